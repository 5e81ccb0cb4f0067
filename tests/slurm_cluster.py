"""A throwaway one-node SLURM cluster on localhost, with accounting, for the SLURM profile test.

Everything lives in one scratch folder (configs, keys, state, logs, the accounting database):
nothing is written to /etc and no system service is started or touched. The daemons run in
the foreground as children of this process and bind only 127.0.0.1 on free ports, so two
clusters (or a real one) on the same machine do not meet. Why slurmdbd and MariaDB:
snakemake-executor-plugin-slurm learns that a job ended from `sacct`, which needs accounting
storage; with accounting_storage/none a run never sees its jobs finish.

Run by hand: `python tests/slurm_cluster.py DIR` starts a cluster in DIR and prints what to
export to use it (sbatch, sinfo, snakemake --profile profiles/slurm); Ctrl-C stops it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurm-wlm", "slurmdbd", "munge", "mariadb-server"]
SBIN = ["/usr/sbin", "/sbin"]
NEEDED = ["slurmctld", "slurmd", "slurmdbd", "sbatch", "srun", "sacct", "scontrol", "sinfo", "squeue",
          "scancel", "sacctmgr", "munge", "munged", "mungekey", "mariadbd", "mariadb-install-db", "mariadb"]
CLUSTER = "ganflowtest"


class ClusterError(RuntimeError):
    """The cluster cannot be installed or started; the message says what to do."""


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def install(timeout: float = 600) -> None:
    """Install Debian's SLURM, slurmdbd, munge and MariaDB where any is missing (root + apt only).

    Services the packages would start are held back for the install (policy-rc.d), so the
    only daemons that ever run are the ones the cluster starts and stops itself.
    """
    missing = [name for name in NEEDED if _which(name) is None]
    if not missing:
        return
    if os.geteuid() != 0 or _which("apt-get") is None:
        raise ClusterError(
            f"{', '.join(missing)} missing, and only root with apt-get can install them here: run the "
            f"SLURM test as root on Debian/Ubuntu, or install {' '.join(PACKAGES)} first")
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\n# held back by ganflow's SLURM test while it installs packages\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-q"]
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.run([*apt, "install", "--no-install-recommends", *PACKAGES], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run([*apt, "update"], env=env, capture_output=True, text=True,
                           timeout=max(1.0, deadline - time.monotonic()))
            proc = subprocess.run([*apt, "install", "--no-install-recommends", *PACKAGES], env=env,
                                  capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise ClusterError(f"apt-get install {' '.join(PACKAGES)} took over {timeout:.0f} s; "
                           "check the machine's package mirror") from None
    finally:
        if own_policy:
            policy.unlink()
    if proc.returncode != 0:
        raise ClusterError(f"apt-get install {' '.join(PACKAGES)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-1500:]}")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, timeout: float, logs: list[Path] = ()) -> None:
    """Poll `ready()` until it is true; after `timeout` seconds fail with the daemons' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}:\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists())
    raise ClusterError(f"{what} not ready after {timeout:.0f} s\n{tails}")


class Cluster:
    """One node (this machine, `cpus` CPUs, `mem_mb` MB) in one partition, with job accounting.

    Use as a context manager: every daemon it starts is stopped on exit, also when starting
    one of them failed halfway.
    """

    def __init__(self, root: Path, cpus: int = 2, mem_mb: int = 4000, gpus: int = 0):
        self.root = Path(root)
        self.cpus = cpus
        self.mem_mb = mem_mb
        self.gpus = gpus
        self.conf = self.root / "etc" / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self._procs: list[tuple[str, subprocess.Popen, Path]] = []

    @property
    def env(self) -> dict[str, str]:
        """The environment for clients (sbatch, sacct, snakemake) to talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf),
                "PATH": os.pathsep.join([str(self.root / "bin"), os.environ.get("PATH", ""), *SBIN])}

    def run(self, *cmd: str, timeout: float = 30) -> str:
        """A client command against this cluster; its stdout, or ClusterError with stderr."""
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def _ok(self, *cmd: str) -> bool:
        try:
            return subprocess.run(cmd, env=self.env, capture_output=True, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _start(self, name: str, *cmd: str) -> None:
        log = self.root / "log" / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self._procs.append((name, proc, log))

    def _alive(self, name: str) -> None:
        for n, proc, log in self._procs:
            if n == name and proc.poll() is not None:
                raise ClusterError(f"{name} exited ({proc.returncode}) while starting:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")

    def start(self, timeout: float = 60) -> None:
        """Start munged, MariaDB, slurmdbd, slurmctld and slurmd, each waited for at most `timeout` s."""
        if os.geteuid() != 0:
            raise ClusterError("a SLURM node (slurmd) runs as root: run the SLURM test as root")
        for sub in ("etc", "log", "munge", "db", "state", "spool", "run", "dev", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        # snakemake-executor-plugin-slurm-jobstep (0.6.1) clears every SLURM_* variable but a few
        # before the srun that starts each job's step, SLURM_CONF included, so that srun would look
        # for /etc/slurm/slurm.conf; this srun puts it back (env passes jobs PATH, sbatch --export=ALL)
        srun = r / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {_which("srun")} "$@"\n')
        srun.chmod(0o755)
        sock = r / "munge" / "munge.socket"
        db_port, dbd_port, ctld_port, slurmd_port = (_free_port() for _ in range(4))
        db_pass = secrets.token_hex(16)

        self.run(_which("mungekey"), "--create", "--force", f"--keyfile={r / 'munge' / 'munge.key'}")
        # --force: munged would refuse a socket below a private (0700) scratch folder; everything here is root's
        self._start("munged", _which("munged"), "--foreground", "--force", f"--key-file={r / 'munge/munge.key'}",
                    f"--socket={sock}", f"--pid-file={r / 'run/munged.pid'}",
                    f"--seed-file={r / 'munge/munged.seed'}")
        _wait("munged", lambda: self._alive("munged") or self._ok(_which("munge"), "-n", "-S", str(sock)),
              timeout, [r / "log/munged.log"])

        self.run(_which("mariadb-install-db"), "--no-defaults", f"--datadir={r / 'db'}", "--user=root",
                 "--skip-test-db", timeout=timeout)
        db_sock = r / "run" / "mariadb.sock"
        self._start("mariadb", _which("mariadbd"), "--no-defaults", f"--datadir={r / 'db'}", "--user=root",
                    f"--socket={db_sock}", f"--port={db_port}", "--bind-address=127.0.0.1",
                    f"--pid-file={r / 'run/mariadb.pid'}", "--innodb-buffer-pool-size=64M",
                    "--innodb-lock-wait-timeout=900")
        sql = [_which("mariadb"), "--no-defaults", f"--socket={db_sock}", "-uroot"]
        _wait("mariadb", lambda: self._alive("mariadb") or self._ok(*sql, "-e", "select 1"),
              timeout, [r / "log/mariadb.log"])
        self.run(*sql, "-e", f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_pass}'; "
                 "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")

        auth = f"AuthType=auth/munge\nAuthInfo=socket={sock}\n"
        dbd_conf = r / "etc" / "slurmdbd.conf"  # slurmdbd reads it beside $SLURM_CONF; it holds a password
        dbd_conf.write_text(
            f"{auth}DbdHost={self.node}\nDbdAddr=127.0.0.1\nDbdPort={dbd_port}\nSlurmUser=root\n"
            f"PidFile={r / 'run/slurmdbd.pid'}\nStorageType=accounting_storage/mysql\n"
            f"StorageHost=127.0.0.1\nStoragePort={db_port}\nStorageUser=slurm\nStoragePass={db_pass}\n"
            "StorageLoc=slurm_acct_db\n")
        dbd_conf.chmod(0o600)
        gres = ["GresTypes=gpu", "AccountingStorageTRES=gres/gpu"] if self.gpus else []
        node_gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        self.conf.write_text("\n".join([
            f"ClusterName={CLUSTER}", f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}", "SlurmUser=root", "SlurmdUser=root",
            auth.strip(), "CredType=cred/munge",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'run/slurmctld.pid'}", f"SlurmdPidFile={r / 'run/slurmd.pid'}",
            # no cgroups: containers and CI machines rarely let a test own them
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/linux",
            "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            f"DefMemPerCPU={self.mem_mb // self.cpus}",
            "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={dbd_port}", f"AccountingStoragePass={sock}",  # the munge socket, for slurmdbd
            "AccountingStoreFlags=job_comment", *gres,
            "JobCompType=jobcomp/none", "MpiDefault=none", "ReturnToService=2", "KillWait=5", "InactiveLimit=0",
            # the node is whatever this machine is: advertise the configured size, not the detected one
            "SlurmdParameters=config_overrides",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb}{node_gres} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
        if self.gpus:  # stand-ins for /dev/nvidia*: SLURM schedules and accounts them like real GPUs
            for i in range(self.gpus):
                (r / "dev" / f"gpu{i}").touch()
            (r / "etc" / "gres.conf").write_text(f"Name=gpu File={r / 'dev'}/gpu[0-{self.gpus - 1}]\n")

        self._start("slurmdbd", _which("slurmdbd"), "-D", "-v")
        _wait("slurmdbd", lambda: self._alive("slurmdbd") or self._ok(_which("sacctmgr"), "-n", "list", "cluster"),
              timeout, [r / "log/slurmdbd.log", r / "log/mariadb.log"])
        self._start("slurmctld", _which("slurmctld"), "-D", "-v", "-f", str(self.conf))
        _wait("slurmctld", lambda: self._alive("slurmctld") or self._ok(_which("scontrol"), "ping"),
              timeout, [r / "log/slurmctld.log"])
        self._start("slurmd", _which("slurmd"), "-D", "-v", "-f", str(self.conf), "-N", self.node)
        _wait("slurmd (node idle)", lambda: self._alive("slurmd") or self._node_idle(),
              timeout, [r / "log/slurmd.log", r / "log/slurmctld.log"])
        # slurmctld registers the cluster in the accounting database by itself, a moment after it starts
        _wait("cluster registration in slurmdbd",
              lambda: CLUSTER in self.run(_which("sacctmgr"), "-n", "-P", "list", "cluster", "format=cluster"),
              timeout, [r / "log/slurmctld.log", r / "log/slurmdbd.log"])

    def _node_idle(self) -> bool:
        try:
            state = self.run(_which("sinfo"), "-h", "-n", self.node, "-o", "%T").strip()
        except ClusterError:
            return False
        if "drain" in state or "inval" in state:
            reason = self.run(_which("sinfo"), "-h", "-n", self.node, "-o", "%E").strip()
            raise ClusterError(f"node {self.node} is {state}: {reason} (see {self.root / 'log/slurmd.log'})")
        return state == "idle"

    def stop(self, timeout: float = 30) -> None:
        """Cancel what is still queued or running, then stop the daemons in reverse start order."""
        if {"slurmctld", "slurmd"} <= {name for name, proc, _ in self._procs if proc.poll() is None}:
            self._ok(_which("scancel"), f"--user={os.getuid()}", "--full")
            try:
                _wait("scancel", lambda: not self.run(_which("squeue"), "-h").strip(), timeout)
            except ClusterError:
                pass  # a job still running after that ends by itself; the daemons go regardless
        while self._procs:
            _, proc, _ = self._procs.pop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import sys

    def _stop(signum, frame):
        raise SystemExit(0)

    install()
    with Cluster(Path(sys.argv[1]).resolve()) as cluster:
        print(f"export SLURM_CONF={cluster.conf} PATH={cluster.root / 'bin'}:$PATH   # Ctrl-C stops the cluster",
              flush=True)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        signal.pause()
