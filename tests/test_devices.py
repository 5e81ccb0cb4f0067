"""No silent CPU: every TensorFlow job says what it runs on, and one that was given a GPU
but sees none stops with one sentence naming the likely cause and the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ganflow import devices
from ganflow.runlog import SetupError
from workflow import REPO


def test_a_gpu_request_is_read_from_slurm_cuda_and_the_config() -> None:
    assert devices.gpu_request({}) is None
    assert devices.gpu_request({"SLURM_JOB_GPUS": "0,1"}) == "SLURM gave this job GPUs (SLURM_JOB_GPUS=0,1)"
    assert devices.gpu_request({"SLURM_JOB_GPUS": "0"}) == "SLURM gave this job GPUs (SLURM_JOB_GPUS=0)"
    assert devices.gpu_request({"SLURM_GPUS_ON_NODE": "0"}) is None  # a count: none
    assert devices.gpu_request({"SLURM_GPUS_ON_NODE": "2"}) == "SLURM gave this job GPUs (SLURM_GPUS_ON_NODE=2)"
    assert devices.gpu_request({"CUDA_VISIBLE_DEVICES": "2"}) == "CUDA_VISIBLE_DEVICES=2"
    for hidden in ("", "-1", "NoDevFiles"):  # a job told to see no GPU
        assert devices.gpu_request({"CUDA_VISIBLE_DEVICES": hidden}) is None
    assert devices.gpu_request({}, ["/gpu:0", "/cpu:0"]) == "train.devices names /gpu:0"
    assert devices.gpu_request({}, require_gpu=True) == "train.require_gpu is true"
    assert devices.gpu_request({"SLURM_JOB_GPUS": "0"}, ["/gpu:0"], require_gpu=False) is None


def test_a_missing_gpu_stops_the_job_naming_the_cause() -> None:
    gpu = [{"device": "/physical_device:GPU:0", "name": "NVIDIA A100", "compute_capability": (8, 0),
            "memory": "81920 MiB"}]
    devices.check_gpu(None, [], "cpu")  # nothing asked for a GPU: the CPU is fine
    devices.check_gpu("CUDA_VISIBLE_DEVICES=0", gpu, "cuda")
    causes = {"cpu": "the CPU build of TensorFlow is installed; install the CUDA build: pip install -e \".[gpu]\"",
              "cuda-no-libraries": "the CUDA libraries it needs (the nvidia-* wheels) are not installed; install "
                                   "the CUDA build: pip install -e \".[gpu]\"",
              "cuda": "the NVIDIA driver and the CUDA libraries most likely do not match"}
    for build, cause in causes.items():
        with pytest.raises(SetupError) as stopped:
            devices.check_gpu("SLURM gave this job GPUs (SLURM_JOB_GPUS=0)", [], build)
        message = str(stopped.value)
        assert message.startswith("this job was given a GPU (SLURM gave this job GPUs (SLURM_JOB_GPUS=0)) but "
                                  f"TensorFlow sees none: {cause}")
        assert message.endswith("set train.require_gpu: false") and "\n" not in message
    assert devices.summary(gpu) == "/physical_device:GPU:0: NVIDIA A100 (compute capability 8.0, 81920 MiB)"


JOB = "from ganflow.devices import start; from ganflow.runlog import logged\nwith logged(None):\n    start(1)\n"


@pytest.mark.parametrize("given", [False, True])
def test_a_job_logs_its_devices_and_stops_when_its_gpu_is_missing(given: bool) -> None:
    """A TensorFlow job as the workflow starts one, with and without a GPU from SLURM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_VISIBLE"))}
    if given:
        env.update(SLURM_JOB_GPUS="0", CUDA_VISIBLE_DEVICES="0")
    done = subprocess.run([sys.executable, "-c", JOB], capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert f"devices: CPU only ({devices.BUILDS[devices.tf_build()]})" in done.stderr
    if given:
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("ERROR: this job was given a GPU (SLURM gave this job GPUs (SLURM_JOB_GPUS=0)) but "
                               "TensorFlow sees none: ") and "require_gpu: false" in last
    else:
        assert done.returncode == 0 and "computes in float32" in done.stderr
