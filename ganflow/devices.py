"""What a TensorFlow job computes on, said in its log, and never a silent CPU fallback.

A GPU node with the CPU build of TensorFlow (or a driver that does not match CUDA)
trains 50-500x slower and nothing fails: each job therefore logs the devices it sees,
and a job that was given a GPU (by SLURM, CUDA_VISIBLE_DEVICES, `train.devices` or
`train.require_gpu`) but sees none stops with one sentence naming the likely cause.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from typing import Mapping

from .runlog import SetupError

log = logging.getLogger(__name__)

GPU_INSTALL = ('install the CUDA build: pip install -e ".[gpu]" (or `make install-gpu`), or run the GPU rules '
               "with --software-deployment-method conda, which uses envs/ganflow-gpu.yaml")


def gpu_request(env: Mapping[str, str] = os.environ, devices: list | tuple = (),
                require_gpu: bool | None = None) -> str | None:
    """Why this job should see a GPU (None: nothing asked for one). `require_gpu` True or
    False decides; None (auto) looks at `devices` and at what SLURM or the user set."""
    if require_gpu is False:
        return None
    if require_gpu:
        return "train.require_gpu is true"
    named = [d for d in devices if "gpu" in str(d).lower()]
    if named:
        return f"train.devices names {', '.join(map(str, named))}"
    for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):  # GPU indices
        if env.get(var, "").strip():
            return f"SLURM gave this job GPUs ({var}={env[var]})"
    for var in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS"):  # counts
        if env.get(var, "").strip() not in ("", "0"):
            return f"SLURM gave this job GPUs ({var}={env[var]})"
    visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and visible not in ("-1", "none", "NoDevFiles"):
        return f"CUDA_VISIBLE_DEVICES={visible}"
    return None


def _gpu_memory() -> list[str]:
    """Each GPU's total memory as nvidia-smi reports it ([] without nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def describe() -> list[dict]:
    """The GPUs TensorFlow sees: name, compute capability, memory (empty list: CPU only).
    Listing physical devices does not start TensorFlow's runtime, so thread settings made
    after this still apply."""
    import tensorflow as tf

    memory = _gpu_memory()
    gpus = []
    for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append({"device": gpu.name, "name": details.get("device_name", "GPU"),
                     "compute_capability": details.get("compute_capability"),
                     "memory": memory[i] if i < len(memory) else "memory unknown"})
    return gpus


def summary(gpus: list[dict]) -> str:
    """One line: every GPU seen, or that there is only the CPU and which build looked."""
    if not gpus:
        return f"CPU only ({BUILDS[tf_build()]})"
    return "; ".join(f"{g['device']}: {g['name']} (compute capability "
                     f"{'.'.join(map(str, g['compute_capability'] or ('?',)))}, {g['memory']})" for g in gpus)


BUILDS = {"cpu": "TensorFlow's CPU build", "cuda-no-libraries": "TensorFlow's CUDA build without its CUDA libraries",
          "cuda": "TensorFlow's CUDA build with its CUDA libraries"}


def tf_build() -> str:
    """Which TensorFlow looks for GPUs: 'cpu' (tensorflow-cpu), 'cuda-no-libraries' (the
    Linux tensorflow wheel without the nvidia-* wheels of its [and-cuda] extra, as the
    default install has it: it runs on the CPU) or 'cuda'."""
    import importlib.util

    import tensorflow as tf

    if not tf.sysconfig.get_build_info().get("is_cuda_build"):
        return "cpu"
    try:
        found = importlib.util.find_spec("nvidia.cudnn") is not None
    except ModuleNotFoundError:
        found = False
    return "cuda" if found else "cuda-no-libraries"


def check_gpu(reason: str | None, gpus: list[dict], build: str) -> None:
    """Stop with one sentence when a GPU was asked for (`reason`) and none is seen."""
    if reason is None or gpus:
        return
    on_purpose = "to run on the CPU on purpose, set train.require_gpu: false"
    given = f"this job was given a GPU ({reason}) but TensorFlow sees none"
    if build == "cpu":
        raise SetupError(f"{given}: the CPU build of TensorFlow is installed; {GPU_INSTALL}; {on_purpose}")
    if build == "cuda-no-libraries":
        raise SetupError(f"{given}: the CUDA libraries it needs (the nvidia-* wheels) are not installed; "
                         f"{GPU_INSTALL}; {on_purpose}")
    raise SetupError(f"{given}: the NVIDIA driver and the CUDA libraries most likely do not match (check "
                     f"`nvidia-smi` and this log's 'Cannot dlopen' and 'cuInit' lines; TensorFlow 2.21 wants CUDA "
                     f"12 and a driver >= 525); {on_purpose}")


def start(threads: int, *, require_gpu: bool | None = None, devices: list | tuple = (),
          computes: str | None = "float32") -> list[dict]:
    """A TensorFlow job's first call: size TensorFlow's thread pools to the job's
    `threads:` (so that jobs sharing a machine each use the cores they asked for), log
    what it runs on and in what precision (None: the caller logs its own), and stop when
    a GPU it was given is missing. Returns the GPUs seen."""
    import tensorflow as tf

    gpus = describe()
    log.info("devices: %s%s", summary(gpus), f"; computes in {computes}" if computes else "")
    check_gpu(gpu_request(os.environ, devices, require_gpu), gpus, tf_build())
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return gpus
