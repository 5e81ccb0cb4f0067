"""benchmarks/gpu_check.py end to end on its 32px toy model (--tiny) and a small packed
dataset: it exits 0 and names the devices, the dtype, a sec/kimg figure, the published
anchors and the reader's images/s. No timing is checked: it holds on any machine."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ganflow.dataset import pack

REPO = Path(__file__).resolve().parents[1]


def _bench_dataset():
    """benchmarks/bench_dataset.py (not a package): its demo-like JPEG maker."""
    spec = importlib.util.spec_from_file_location("bench_dataset", REPO / "benchmarks" / "bench_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_check_names_devices_dtype_sec_per_kimg_anchors_and_reader(tmp_path):
    manifests = _bench_dataset().make_images(tmp_path / "src", 16, 64, 90)
    pack(manifests, tmp_path / "dataset", shards=2, seed=0)
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tiny", "--dataset",
                           str(tmp_path / "dataset"), "--seconds", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr[-3000:]}"
    assert re.search(r"^1\. devices: \S", out, re.M), out
    gpu_seen = "no GPU:" not in out
    assert gpu_seen or "no GPU: this runs on the CPU, and the figures below are the CPU's" in out
    assert re.search(r"^2\. dtype: training would compute its convolutions in (float32|bfloat16|float16) "
                     r"\(conv_dtype auto\): \S", out, re.M), out
    assert re.search(r"-> [\d,.e+]+ sec/kimg, [\d.e+-]+ images/s", out), out
    # The published anchors, their sources, and the estimates computed from the FLOP counts.
    for anchor in ("21.6-24.2", "72.5-74.9", "12.53", "41.06", "stylegan2-ada-pytorch's README.md",
                   "stylegan3's docs/configs.md"):
        assert anchor in out, anchor
    assert re.search(r"paper256 [\d,]+ GFLOP, paper512 [\d,]+ GFLOP", out), out
    assert re.search(r"^\s+H100 SXM\s+989 \(bfloat16\)\s+[\d.,]+\s+[\d.,]+", out, re.M), out
    assert re.search(r"^\s+at 32px: [\d,]+ images/s .*the step consumes [\d.e+-]+ images/s: (keeps up|falls behind)",
                     out, re.M), out
    assert re.search(r"^verdict: (GPU seen|no GPU).*; computes in \w+; [\d,.e+]+ s/kimg at 32px; the reader",
                     out, re.M), out
