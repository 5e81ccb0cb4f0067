"""Mixed precision as the official StyleGAN2 does it: float16 in the highest resolutions
with conv_clamp 256 and dynamic loss scaling (run here on the CPU, where float16 computes,
slowly), and conv_dtype 'auto' choosing per device."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ganflow import networks, train_config
from ganflow.train_config import TrainConfig
from ganflow.trainer import LOSS_SCALE_LOG2, Trainer

TINY = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=32,
            batch_size=8, mbstd_group=2, r1_interval=4, r1_gamma=1.0, augment=False, ema_kimg=0.1,
            ema_rampup=0.0, swd_images=64, swd_patches=16, grid=[2, 2])


def test_float16_runs_in_the_highest_resolutions_as_upstream() -> None:
    # stylegan2-ada-pytorch: fp16_resolution = max(2 ** (log2(res) + 1 - num_fp16_res), 8)
    assert networks.fp16_resolution(256, 4) == 32 and networks.fp16_resolution(1024, 4) == 128
    assert networks.fp16_resolution(16, 4) == 8  # never the 4x4 layers
    G = networks.Generator(resolution=64, z_dim=8, w_dim=8, mapping_layers=1, channel_base=256, channel_max=16,
                           conv_clamp=256, conv_dtype="float16", num_fp16_res=2)
    assert {b.resolution: b.conv1.conv.conv_dtype for b in G.synthesis.blocks} == {
        4: "float32", 8: "float32", 16: "float32", 32: "float16", 64: "float16"}
    D = networks.Discriminator(resolution=64, channel_base=256, channel_max=16, conv_clamp=256,
                               conv_dtype="float16", num_fp16_res=2)
    assert D.from_rgb.conv_dtype == "float16" and D.conv.conv_dtype == "float32"
    assert [b.conv0.conv_dtype for b in D.blocks] == ["float16", "float16", "float32", "float32"]
    cfg = TrainConfig.from_dict({**TINY, "conv_dtype": "float16"})
    assert cfg.conv_clamp == 256 and "conv_clamp 256" in cfg.conv_dtype_reason
    assert TrainConfig.from_dict({**TINY, "conv_dtype": "float16", "conv_clamp": 64}).conv_clamp == 64
    assert TrainConfig.from_dict({**TINY, "conv_dtype": "float32"}).conv_clamp is None


def _pair(cls, **kw):
    """The same random weights in a float32 and a float16 network."""
    a, b = cls(**kw, conv_dtype="float32"), cls(**kw, conv_dtype="float16", num_fp16_res=3)
    for x, y in zip(a.weights, b.weights):
        y.assign(x)
    return a, b


def test_float16_forward_matches_float32() -> None:
    """The float16 pre-normalised modulated convolutions compute the float32 network's
    images and logits to float16's precision (10-bit mantissa: ~1e-3 relative)."""
    tf.keras.utils.set_random_seed(1)
    kw = dict(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=512, channel_max=32, conv_clamp=256)
    G32, G16 = _pair(networks.Generator, **kw)
    for layer in G32.synthesis.convs:  # noise strengths and biases start at 0: give them values
        layer.noise_strength.assign(0.3)
        layer.bias.assign(tf.random.normal(layer.bias.shape, stddev=0.5))
    for x, y in zip(G32.weights, G16.weights):
        y.assign(x)
    z = tf.random.stateless_normal([4, 16], [0, 1])
    img32, img16 = G32(z, noise_mode="const"), G16(z, noise_mode="const")
    scale = float(tf.reduce_max(tf.abs(img32)))
    diff = float(tf.reduce_max(tf.abs(img32 - img16)))
    assert 0 < diff < 1e-2 * scale, (diff, scale)  # float16 really ran, and agrees
    D32, D16 = _pair(networks.Discriminator, resolution=32, channel_base=512, channel_max=32, mbstd_group=2,
                     conv_clamp=256)
    logits32, logits16 = D32(img32), D16(img32)
    spread = float(tf.reduce_max(tf.abs(logits32)))
    assert 0 < float(tf.reduce_max(tf.abs(logits32 - logits16))) < 1e-2 * max(spread, 1.0)


def test_an_overflowing_float16_step_is_skipped_its_scale_lowered_then_it_recovers(tmp_path) -> None:
    cfg = TrainConfig.from_dict({**TINY, "conv_dtype": "float16", "num_fp16_res": 2})
    t = Trainer(cfg)
    reals = tf.random.stateless_uniform([8, 16, 16, 3], [1, 2], -1, 1)
    t.train_step(iter([reals]))
    start, up, down = LOSS_SCALE_LOG2
    assert float(t.loss_scale["G"].numpy()) == pytest.approx(start + 2 * up)  # Gmain and Greg stepped
    g_before = [w.numpy() for w in t.G.trainable_variables]
    d_before = [w.numpy() for w in t.D.trainable_variables]
    moments = [m.numpy() for m in t.g_opt.variables]
    steps = int(t.g_opt.iterations.numpy())
    t.loss_scale["G"].assign(40.0)  # 2^40 x the loss overflows float16 in the backward pass
    stats = t.train_step(iter([reals]))
    assert stats["loss_scale_G"] == 39.0 and float(t.loss_scale["G"].numpy()) == 39.0
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(g_before, t.G.trainable_variables))
    assert int(t.g_opt.iterations.numpy()) == steps  # not counted: Adam's bias correction stays in step
    assert all(np.array_equal(a, m.numpy()) for a, m in zip(moments, t.g_opt.variables)
               if m.dtype != tf.int64)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(d_before, t.D.trainable_variables))  # D's scale is fine
    t.loss_scale["G"].assign(start)
    stats = t.train_step(iter([reals]))
    assert stats["loss_scale_G"] == pytest.approx(start + up)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(g_before, t.G.trainable_variables))
    assert int(t.g_opt.iterations.numpy()) == steps + 1
    assert all(np.isfinite(w.numpy()).all() for w in t.G.weights + t.D.weights)
    t.checkpoint.write(str(tmp_path / "ckpt"))  # the scales are part of a snapshot (resume is exact)
    resumed = Trainer(cfg)
    resumed.restore(str(tmp_path / "ckpt"))
    assert float(resumed.loss_scale["G"].numpy()) == pytest.approx(start + up)


@pytest.mark.parametrize("caps, dtype", [([(8, 0)], "bfloat16"), ([(9, 0), (8, 6)], "bfloat16"),
                                         ([(7, 0)], "float16"), ([(7, 5), (8, 0)], "float16"),
                                         ([(6, 1)], "float32")])
def test_conv_dtype_auto_picks_per_gpu(monkeypatch, caps, dtype) -> None:
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(len(caps))]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"compute_capability": caps[gpus.index(gpu)]})
    cfg = TrainConfig.from_dict({**TINY, "conv_dtype": "auto"})
    assert cfg.conv_dtype == dtype and "compute capability" in cfg.conv_dtype_reason
    assert cfg.conv_clamp == (256 if dtype == "float16" else None)
    assert train_config.auto_conv_dtype(["/cpu:0"])[0] in ("float32", "bfloat16")  # the CPU named: its flags


MIRRORED_FP16 = """
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ganflow.train_config import TrainConfig
from ganflow.trainer import Trainer, make_strategy, step_batches
cfg = dict(json.loads(%r), conv_dtype="float16", num_fp16_res=2, devices=["/cpu:0", "/cpu:1"])
t = Trainer(TrainConfig.from_dict(cfg), make_strategy(cfg["devices"]))
batches = step_batches(tf.data.Dataset.from_tensor_slices(tf.random.stateless_uniform([64, 8, 8, 3], [1, 2], -1, 1)), t)
t.train_step(batches)
before, steps = [w.numpy() for w in t.G.trainable_variables], int(t.g_opt.iterations.numpy())
t.loss_scale["G"].assign(40.0)
skipped = t.train_step(batches)
unchanged = all(np.array_equal(a, w.numpy()) for a, w in zip(before, t.G.trainable_variables))
t.loss_scale["G"].assign(6.0)
t.train_step(batches)
spread = max(float(np.abs(v.value.values[0].numpy() - v.value.values[1].numpy()).max()) for v in t.G.weights + t.D.weights)
print(json.dumps({"replicas": t.replicas, "scale": skipped["loss_scale_G"], "unchanged": unchanged,
                  "steps": [steps, int(t.g_opt.iterations.numpy())], "spread": spread}))
"""


@pytest.mark.slow
def test_a_skipped_float16_step_is_skipped_on_every_replica() -> None:
    """Two replicas (logical CPUs): an overflow anywhere skips the step everywhere (the NaN
    gradients sum across replicas), and the replicas keep identical weights."""
    import json
    import os
    import subprocess
    import sys

    from workflow import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cfg = dict(TINY, resolution=8)  # its 8x8 block computes in float16 (never the 4x4 one)
    done = subprocess.run([sys.executable, "-c", MIRRORED_FP16 % json.dumps(cfg)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"replicas": 2, "scale": 39.0, "unchanged": True, "steps": [2, 3], "spread": 0.0}
