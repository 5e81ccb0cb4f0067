"""Training loop: config and presets, gradient accumulation and multi-device equivalence
(every phase), learning, snapshots/resume after kill -9, transfer, exports, SWD. The
losses against the official code: tests/test_losses.py; augmentation: tests/test_augment.py."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ganflow import networks, records, swd, train, trainlog, weights
from ganflow import dataset as dataset_lib
from ganflow.latents import seed_images
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv
from ganflow.train_config import TrainConfig
from ganflow.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
# The rest comes from the default preset ('auto' at 16px); not its EMA ramp-up, which on
# runs this short would cut the half-life the learning tests were calibrated with.
TINY = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=32,
            batch_size=8, mbstd_group=2, r1_interval=4, r1_gamma=1.0, augment=False, ema_kimg=0.1,
            ema_rampup=0.0, swd_images=64, swd_patches=16, grid=[2, 2], conv_dtype="float32")
# 8px networks trace about twice as fast; enough to check the arithmetic of an update.
TINY8 = dict(TINY, resolution=8)
# A whole run on 60 packed images, shuffled: 6 ticks of 16 steps (12.8 passes over the
# data), a snapshot every tick, each in the middle of a pass (128 images a tick), the
# newest 5 kept; ADA on so that its state has to survive a resume too.
RUN = dict(TINY, tick_kimg=0.128, total_kimg=0.768, snapshot_ticks=1, keep_snapshots=5,
           augment=True, augment_p=0.1, ada_target=0.6, ada_kimg=100.0)
RUN_IMAGES = 60
# log.csv columns that must be equal between runs: all but the timings
LOG_EQUAL = [c for c in trainlog.LOG_COLUMNS
             if c not in ("seconds", "sec_per_tick", "sec_per_kimg", "images_per_sec", "data_wait_pct")]


def blobs(n: int, res: int = 16, seed: int = 0) -> np.ndarray:
    """Gradient backgrounds with one coloured disk: structure an SWD can see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res] / res
    out = []
    for _ in range(n):
        top, bottom, disk_colour = rng.uniform(-1, 1, (3, 3))
        bg = top * (1 - yy[..., None]) + bottom * yy[..., None]
        cy, cx = rng.uniform(0.3, 0.7, 2)
        radius = rng.uniform(0.15, 0.3)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        out.append(np.where(disk[..., None], disk_colour, bg))
    return np.asarray(out, np.float32)


def in_memory(images: np.ndarray):
    """An in-memory training stream in a fixed order: start -> the images from `start` on."""
    return lambda start: tf.data.Dataset.from_tensor_slices(images).repeat().skip(start)


def pack(images: np.ndarray, root: Path) -> Path:
    """A packed dataset of the images (as PNG files, so exact), as the dataset rule makes one."""
    rows = []
    for i, image in enumerate(images):
        path = root / "images" / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(networks.to_uint8(image[None])[0]).save(path)
        rows.append({"image": f"{i:04d}-0", "id": f"{i:04d}", "path": str(path), "source": str(path),
                     "box": f"0,0,{image.shape[0]},{image.shape[0]}", "width": image.shape[0],
                     "height": image.shape[0], "format": "png",
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    write_tsv(root / "images.tsv", rows, dataset_lib.MANIFEST_COLUMNS)
    dataset_lib.pack([root / "images.tsv"], root / "dataset", shards=3, seed=0)
    return root / "dataset"


def stream(cfg: TrainConfig, data_dir: Path):
    """The training stream exactly as the workflow's adapter (workflow_scripts/train.py) makes it."""
    return train.dataset_stream(data_dir, cfg)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def weights_of(prefix: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(prefix))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.endswith("VARIABLE_VALUE")}


def assert_same_export(a: Path, b: Path) -> None:
    """Bit-identical exported networks."""
    for net in ("generator", "discriminator"):
        wa, wb = weights_of(a / net / "weights"), weights_of(b / net / "weights")
        assert wa.keys() == wb.keys() and len(wa) > 10
        for key in wa:
            np.testing.assert_array_equal(wa[key], wb[key], err_msg=f"{net} {key}")


def assert_same_log(a: Path, b: Path) -> None:
    """Equal log.csv rows but for the timings."""
    rows_a, rows_b = read_csv(a / "log.csv"), read_csv(b / "log.csv")
    assert [{k: r[k] for k in LOG_EQUAL} for r in rows_a] == [{k: r[k] for k in LOG_EQUAL} for r in rows_b]


# ----- config ------------------------------------------------------------------------------


def test_config_rejects_unknown_keys_and_resolves_per_resolution_values() -> None:
    with pytest.raises(SetupError, match="unknown training setting 'lr'"):
        TrainConfig.from_dict({"lr": 0.1})
    cfg = TrainConfig.from_dict({"resolution": 256, "g_lr": {"128": 0.0015, "256": 0.002}, "batch_size": 16})
    assert cfg.at_resolution("g_lr") == 0.002 and cfg.at_resolution("batch_size") == 16
    assert TrainConfig().resolution == 512 and TrainConfig().channel_base // 512 == 64
    with pytest.raises(SetupError, match="'d_lr' has no entry for resolution 256"):
        TrainConfig.from_dict({"resolution": 256, "d_lr": {512: 0.002}})
    with pytest.raises(SetupError, match="'resolution'.*power of two"):
        TrainConfig.from_dict({"resolution": 48})
    with pytest.raises(SetupError, match="multiple of 4"):
        Trainer(TrainConfig.from_dict({**TINY8, "batch_size": 6, "accum_steps": 4}))


def test_presets_are_upstreams_and_given_settings_win() -> None:
    """stylegan2-ada-pytorch's --cfg values; the default takes paper256/512/1024 at those
    resolutions and 'auto' elsewhere; a setting given explicitly overrides the preset."""
    paper512 = TrainConfig()
    assert paper512.preset == "paper512"
    assert (paper512.batch_size, paper512.mbstd_group, paper512.channel_base, paper512.g_lr, paper512.d_lr,
            paper512.r1_gamma, paper512.ema_kimg, paper512.ema_rampup, paper512.mapping_layers) == (
        64, 8, 32768, 0.0025, 0.0025, 0.5, 20.0, 0.0, 8)
    ffhq = TrainConfig.from_dict({"preset": "stylegan2", "resolution": 1024})
    assert (ffhq.batch_size, ffhq.mbstd_group, ffhq.g_lr, ffhq.r1_gamma, ffhq.ema_kimg) == (32, 4, 0.002, 10.0, 10.0)
    assert TrainConfig.from_dict({"resolution": 256}).preset == "paper256"
    assert TrainConfig.from_dict({"resolution": 1024}).r1_gamma == 2.0
    # 'auto' (the default at 128px): upstream's formulas of resolution and device count.
    auto = TrainConfig.from_dict({"resolution": 128})
    assert auto.preset == "auto"
    assert (auto.batch_size, auto.mbstd_group, auto.channel_base, auto.g_lr, auto.ema_kimg, auto.ema_rampup,
            auto.mapping_layers) == (32, 4, 16384, 0.0025, 10.0, 0.05, 2)
    assert auto.r1_gamma == pytest.approx(0.0002 * 128 ** 2 / 32)
    four = TrainConfig.from_dict({"preset": "auto", "resolution": 512, "devices": ["/gpu:0", "/gpu:1", "/gpu:2",
                                                                                     "/gpu:3"]})
    assert (four.batch_size, four.mbstd_group, four.channel_base) == (32, 4, 32768)
    assert four.r1_gamma == pytest.approx(0.0002 * 512 ** 2 / 32) and four.ema_kimg == 10.0
    # Given settings win; the gamma formula keeps the preset's batch (as upstream's --batch).
    mine = TrainConfig.from_dict({"resolution": 128, "batch_size": 8, "r1_gamma": 3.0})
    assert (mine.batch_size, mine.r1_gamma, mine.mbstd_group) == (8, 3.0, 4)
    assert "r1_gamma" not in mine.from_preset and "ema_kimg" in mine.from_preset
    assert mine.describe().startswith("preset auto (mbstd_group=4, ")
    # Resolved, the config round-trips (what snapshots and exports record).
    assert TrainConfig.from_dict(json.loads(json.dumps(mine.to_dict()))) == mine
    with pytest.raises(SetupError, match="'preset' must be one of by-resolution, auto, stylegan2"):
        TrainConfig.from_dict({"preset": "ffhq"})


def test_conv_dtype_auto_is_bfloat16_where_the_hardware_multiplies_it(monkeypatch, tmp_path) -> None:
    """'auto' (the default) resolves by the CPU's flags, and the config records the result."""
    from ganflow import train_config

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert train_config.cpu_flags(cpuinfo) == {"fpu", "avx512f", "avx512_bf16"}
    assert train_config.cpu_flags(tmp_path / "missing") == set()
    for flags, dtype in ((set(), "float32"), ({"avx512f"}, "float32"), ({"avx512_bf16"}, "bfloat16"),
                         ({"amx_bf16"}, "bfloat16")):
        monkeypatch.setattr(train_config, "cpu_flags", lambda: flags)
        assert TrainConfig.from_dict({"resolution": 16}).to_dict()["conv_dtype"] == dtype
        assert TrainConfig.from_dict({"resolution": 16, "conv_dtype": "float32"}).conv_dtype == "float32"
    with pytest.raises(SetupError, match="'conv_dtype' must be one of auto, float32, bfloat16, float16"):
        TrainConfig.from_dict({"conv_dtype": "float64"})


# ----- the update: accumulation, devices, learning --------------------------------------


def test_accumulation_equals_large_batch() -> None:
    """k=4 micro-batches of 2 give the gradients and the update of one batch of 8."""
    reals = tf.constant(blobs(8, res=8))
    seed = tf.constant([5, 0], tf.int64)
    big = Trainer(TrainConfig.from_dict({**TINY8, "augment": True, "augment_p": 0.5}))
    small = Trainer(TrainConfig.from_dict({**TINY8, "augment": True, "augment_p": 0.5, "accum_steps": 4}))
    assert (big.micro, small.micro) == (8, 2)
    assert (big.pl_micro, small.pl_micro) == (4, 1)
    # Gradients, not just weights after Adam: Adam is blind to a constant factor, so only
    # the gradients show that micro-batches are averaged and not summed. Every phase: the
    # path-length pass too, whose batch mean couples the micro-batches (a first pass
    # measures it), and R1 through the augmentation, whose pad margin is the batch's.
    for phase in ("Gmain", "Greg", "Dmain", "Dreg"):
        x = reals if phase[0] == "D" else None
        (ga, sa), (gb, sb) = big.phase_grads(phase, seed, x), small.phase_grads(phase, seed, x)
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=phase)
        for key in sa:
            np.testing.assert_allclose(sa[key], sb[key], rtol=1e-4, atol=1e-6, err_msg=f"{phase} {key}")
    # With stddev groups (4) wider than the micro-batch (2) the statistics differ: the
    # condition is needed, and the comparison above is able to fail.
    big.D.mbstd_group = small.D.mbstd_group = 4
    ga, _ = big.grads("Dmain", seed, reals)  # eager: the compiled phases keep the group they were traced with
    gb, _ = small.grads("Dmain", seed, reals)
    assert max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(ga, gb)) > 1e-4
    big.D.mbstd_group = small.D.mbstd_group = 2
    # Without the first pass, micro-batches would take their own mean path length.
    (gb, _), (ga, _) = small.grads("Greg", seed), big.phase_grads("Greg", seed)
    assert max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(ga, gb)) > 1e-4
    big.train_step(iter([reals]))
    small.train_step(iter([reals]))
    # The whole update (all four phases, EMA, w_avg, path-length mean). Adam steps are
    # about lr = 0.0025 each; 1e-4 leaves room for round-off that Adam amplifies on
    # near-zero gradients.
    for net in ("G", "G_ema", "D"):
        for a, b in zip(getattr(big, net).weights, getattr(small, net).weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-4, err_msg=a.path)
    assert float(tf.reduce_max(tf.abs(big.G.mapping.w_avg))) > 0
    assert float(big.pl_mean.numpy()) > 0
    np.testing.assert_allclose(big.pl_mean.numpy(), small.pl_mean.numpy(), rtol=1e-5)


MIRRORED_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganflow import train
    from ganflow.train_config import TrainConfig
    from ganflow.trainer import Trainer, make_strategy, step_batches
    cfg = json.loads(sys.argv[1])
    images = train._image_stream(tf.data.Dataset.from_tensor_slices(np.load(sys.argv[2])), 8)
    two = Trainer(TrainConfig.from_dict({**cfg, "devices": ["/cpu:0", "/cpu:1"]}),
                  make_strategy(["/cpu:0", "/cpu:1"]))
    one = Trainer(TrainConfig.from_dict(cfg))
    seed = tf.constant([3, 0], tf.int64)

    def replica_grads(x, phase):
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        return two.phase_grads(phase, seed, x, rid)[0]

    two_reals, one_reals = next(step_batches(images, two)), next(step_batches(images, one))
    mirrored, single = [], []
    for phase in ("Dreg", "Greg"):  # R1 through augmentation; path length with its batch mean
        per_replica = two.strategy.run(replica_grads, args=(two_reals if phase == "Dreg" else None, phase))
        mirrored += [two.strategy.reduce("MEAN", g, axis=None) for g in per_replica]
        single += one.phase_grads(phase, seed, one_reals if phase == "Dreg" else None)[0]

    def rel_diff(a, b):
        # Largest difference relative to the tensor's largest gradient, in float64: float32
        # round-off in a sum scales with its terms, not its result, so an element that cancels
        # to ~1e-9 in a tensor of ~1e-2 has no meaningful relative error of its own (elementwise
        # |a-b|/(|b|+1e-6) read 0.9e-3 to 1.15e-3 from one such element). Round-off measures
        # ~1e-6 on this scale; a wrong split of images or random numbers over replicas ~1
        # (the single device with another seed: 4.5).
        a, b = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
        return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))

    grad_diff = max(rel_diff(a, b) for a, b in zip(mirrored, single))
    before = [w.numpy() for w in one.G.weights + one.D.weights]
    for trainer in (two, one):
        trainer.train_step(step_batches(images, trainer))
    moved = max(float(np.abs(w.numpy() - b).max()) for w, b in zip(one.G.weights + one.D.weights, before))
    diff = max(float(np.abs(a.numpy() - b.numpy()).max())
               for net in ("G", "G_ema", "D") for a, b in zip(getattr(two, net).weights, getattr(one, net).weights))
    spread = max(float(np.abs(v.value.values[0].numpy() - v.value.values[1].numpy()).max())
                 for v in two.G.weights + two.D.weights)
    print(json.dumps({"replicas": two.replicas, "micro": [two.micro, one.micro], "grad_diff": grad_diff,
                      "diff": diff, "moved": moved, "spread": spread, "nimg": int(two.nimg.numpy())}))
""")


def test_mirrored_strategy_on_two_cpus_equals_one_device(tmp_path: Path) -> None:
    """Two logical CPUs x 2 micro-batches of 2 == one device x 2 micro-batches of 4."""
    np.save(tmp_path / "images.npy", blobs(8, res=8))
    cfg = {**TINY8, "accum_steps": 2, "augment": True, "augment_p": 0.5}
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", MIRRORED_CHILD, json.dumps(cfg), str(tmp_path / "images.npy")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["micro"] == [2, 4] and result["nimg"] == 8
    assert result["grad_diff"] < 1e-4  # relative to each gradient tensor's largest element
    assert result["spread"] == 0.0  # both replicas hold identical weights
    # Adam normalises each step to about lr (0.002), so near-zero gradients amplify
    # round-off; the weights still agree to a few percent of one step.
    assert result["moved"] > 1e-3 and result["diff"] < 0.05 * result["moved"]


def test_twenty_steps_lower_d_loss_on_real_vs_noise() -> None:
    trainer = Trainer(TrainConfig.from_dict(TINY8))
    reals = tf.constant(blobs(8, res=8))
    noise = tf.random.stateless_uniform([8, 8, 8, 3], [1, 2], -1.0, 1.0)

    def d_loss() -> float:
        D = trainer.D
        return float(tf.reduce_mean(tf.nn.softplus(-D(reals))) + tf.reduce_mean(tf.nn.softplus(D(noise))))

    before = d_loss()
    for _ in range(20):
        stats = trainer.train_step(iter([reals]))
    assert np.isfinite(list(stats.values())).all()
    assert d_loss() < before - 0.02
    assert int(trainer.nimg.numpy()) == 160 and int(trainer.d_steps.numpy()) == 20


def test_freeze_d_keeps_the_top_layers_bit_equal_while_the_rest_train() -> None:
    """Freeze-D, counted as stylegan2-ada-pytorch's --freezed: fromrgb, then each block's
    conv0, conv1, skip from the top resolution. Three frozen at 8px: fromrgb and the 8px
    block's conv0 and conv1; its skip and the 4x4 end train (R1 included)."""
    trainer = Trainer(TrainConfig.from_dict({**TINY8, "freeze_d": 3}))
    assert trainer.frozen_d == ["from_rgb", "block_8.conv0", "block_8.conv1"]
    D = trainer.D
    frozen = [D.from_rgb, D.block_8.conv0, D.block_8.conv1]
    frozen_ids = {id(v) for layer in frozen for v in layer.weights}
    before = {id(v): v.numpy().copy() for v in D.weights}
    reals = tf.constant(blobs(8, res=8))
    for _ in range(4):  # r1_interval 4: one step runs R1 too
        trainer.train_step(iter([reals]))
    moved = {id(v) for v in D.weights if not np.array_equal(v.numpy(), before[id(v)])}
    assert not moved & frozen_ids
    assert moved == {id(v) for v in D.weights} - frozen_ids  # every other weight trained
    assert len(D.trainable_variables) == len(D.weights) - len(frozen_ids)
    with pytest.raises(SetupError, match="freeze_d' must lie in 0..7"):
        TrainConfig.from_dict({**TINY, "freeze_d": 8})


# ----- whole runs ------------------------------------------------------------------------


@dataclass
class Run:
    run_dir: Path
    out_dir: Path
    data_dir: Path
    fingerprint: str
    result: dict


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One uninterrupted run on a packed dataset read as the workflow reads it (shuffled),
    the reference that resumed runs must reproduce bit for bit."""
    root = tmp_path_factory.mktemp("finished")
    images = blobs(RUN_IMAGES)
    data_dir = pack(images, root)
    cfg = TrainConfig.from_dict(RUN)
    fingerprint = records.dataset_fingerprint(data_dir)
    result = train.train(cfg, stream(cfg, data_dir), fingerprint, root / "run", root / "out")
    return Run(root / "run", root / "out", data_dir, fingerprint, result)


def test_run_outputs_logs_frames_and_export(finished_run: Run) -> None:
    out = finished_run.out_dir
    rows = list(read_csv(out / "log.csv"))
    assert [r["kimg"] for r in rows] == [f"{0.128 * i:.3f}" for i in range(7)]
    assert all(r["loss_d"] and r["loss_g"] and r["sec_per_kimg"] and r["augment_p"] for r in rows[1:])
    assert all(0 <= float(r["data_wait_pct"]) <= 100 for r in rows[1:])
    assert any(r["r1"] for r in rows[1:]) and any(r["pl"] for r in rows[1:])
    frames = read_tsv(out / "frames.tsv")
    assert [f["kimg"] for f in frames] == [r["kimg"] for r in rows]
    for f in frames:
        assert Path(f["path"]).is_file() and Path(f["path"]).name == f"fakes-{float(f['kimg']):010.3f}.png"
        assert Image.open(f["path"]).size == (32, 32)  # 2x2 grid of 16px
    snaps = sorted((finished_run.run_dir / "snapshots").iterdir())
    assert [s.name for s in snaps] == [f"snapshot-{128 * k:012d}" for k in range(2, 7)]  # newest 5 kept
    meta = json.loads((snaps[-1] / "meta.json").read_text())
    assert meta["kimg"] == 0.768 and meta["dataset_fingerprint"] == finished_run.fingerprint
    tags = {value.tag for events in (finished_run.run_dir / "tensorboard").iterdir()
            for event in tf.compat.v1.train.summary_iterator(str(events)) for value in event.summary.value}
    assert {"loss_d", "loss_g", "r1", "pl", "augment_p", "swd", "sec_per_kimg", "fakes"} <= tags
    G, D, info = weights.load_export(out)
    assert info["kimg"] == 0.768 and info["num_ws"] == G.num_ws == 6
    assert info["style_groups"] == {k: list(v) for k, v in
                                    networks.style_groups(16).items()}
    # The run record holds the resolved settings: the preset 'by-resolution' chose and its values.
    assert info["config"] == TrainConfig.from_dict(RUN).to_dict()
    assert info["config"]["preset"] == "auto" and info["config"]["g_lr"] == info["config"]["d_lr"] == 0.0025
    assert info["config"]["r1_gamma"] == 1.0 and info["config"]["pl_weight"] == 2.0  # RUN's own, the default
    imgs = G(tf.random.normal([3, 16]), psi=0.7)
    assert imgs.shape == (3, 16, 16, 3) and D(imgs).shape == (3, 1)


def test_swd_falls_during_training(finished_run: Run) -> None:
    rows = list(read_csv(finished_run.out_dir / "log.csv"))
    scores = [float(r["swd"]) for r in rows]
    assert len(scores) == 7
    assert scores[-1] < 0.8 * scores[0], scores


KILL_CHILD = textwrap.dedent("""
    import json, sys
    from ganflow import records, train
    cfg = train.TrainConfig.from_dict(json.loads(sys.argv[1]))
    train.train(cfg, train.dataset_stream(sys.argv[2], cfg), records.dataset_fingerprint(sys.argv[2]),
                sys.argv[3], sys.argv[4])
""")


def test_resume_after_kill_is_bit_identical(finished_run: Run, tmp_path: Path) -> None:
    """A real training process, SIGKILLed at a random moment after its first snapshot,
    then run again: weights, log and frames equal the uninterrupted run's, although the
    data is shuffled and every snapshot falls in the middle of a pass."""
    run_dir, out_dir, child_log = tmp_path / "run", tmp_path / "out", tmp_path / "child.log"
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"kill moment drawn with seed {seed}")  # shown if the test fails
    rng = np.random.default_rng(seed)
    # The child would train far longer than the reference run; once it is killed, the
    # resumed run (total_kimg back to 0.768: allowed) must end exactly where that one did.
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(child_log, "w") as logfile:
        child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, json.dumps({**RUN, "total_kimg": 100.0}),
                                  str(finished_run.data_dir), str(run_dir), str(out_dir)],
                                 stdout=logfile, stderr=subprocess.STDOUT, env=env)
        try:
            def wait_for(done) -> float:
                deadline = time.time() + 240
                while not done():
                    assert child.poll() is None and time.time() < deadline, child_log.read_text()[-3000:]
                    time.sleep(0.02)
                return time.perf_counter()

            first = wait_for(lambda: list(run_dir.glob("snapshots/snapshot-*")))
            # A tick as this machine runs it now, then a random moment within the next two:
            # a step, an SWD, a frame or a snapshot being written (but well before 0.768).
            tick = wait_for(lambda: len(trainlog.read_log(run_dir / "log.csv")) >= 3) - first
            time.sleep(rng.uniform(0, 2 * tick))
            assert child.poll() is None, child_log.read_text()[-3000:]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    saved = train._newest_intact(run_dir)
    saved_nimg = json.loads((saved / "meta.json").read_text())["nimg"]
    assert 0 < saved_nimg < 768
    assert saved_nimg % RUN_IMAGES, "the snapshot must fall in the middle of a pass"
    # Leftovers of a kill in the middle of a snapshot must not be picked up.
    (run_dir / "snapshots" / ".partial-000000099999-1").mkdir()
    (run_dir / "snapshots" / "snapshot-000000099999").mkdir()
    with open(run_dir / "log.csv", "a") as fh:
        fh.write("9.999,99,")  # a row cut short
    cfg = TrainConfig.from_dict(RUN)
    result = train.train(cfg, stream(cfg, finished_run.data_dir), finished_run.fingerprint, run_dir, out_dir)
    assert result["resumed_from"] == str(saved) and result["start_kimg"] == saved_nimg / 1000
    assert not (run_dir / "snapshots" / ".partial-000000099999-1").exists()
    assert (run_dir / "snapshots" / "snapshot-000000099999.broken").is_dir()
    assert_same_export(out_dir, finished_run.out_dir)
    assert_same_log(out_dir, finished_run.out_dir)
    frames = sorted((out_dir / "frames").iterdir())
    assert [f.name for f in frames] == sorted(f.name for f in (finished_run.out_dir / "frames").iterdir())
    for frame in frames:
        assert frame.read_bytes() == (finished_run.out_dir / "frames" / frame.name).read_bytes(), frame.name


def test_damaged_snapshots_are_set_aside_and_the_newest_intact_one_resumed(
        finished_run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The ways a snapshot ends up cut short (a full disk, a node dying mid-flush): its
    data, index or meta file truncated, its checksums missing; one of each, newest first.
    Resume walks back past them all, setting each aside (kept, named in a warning), and
    still ends bit-identical to the uninterrupted run."""
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    shutil.copytree(finished_run.run_dir, run_dir)
    snaps = train._snapshots(run_dir)
    damaged = {}
    for snapshot, name in zip(snaps[::-1], ["ckpt.data-00000-of-00001", "ckpt.index", "meta.json", train.CHECKSUMS]):
        files = sorted(p.name for p in snapshot.iterdir())
        assert name in files
        if name == train.CHECKSUMS:
            (snapshot / name).unlink()
            files.remove(name)
        else:
            with open(snapshot / name, "r+b") as fh:
                fh.truncate(os.path.getsize(snapshot / name) // 2)
        damaged[snapshot] = name, files
    caplog.set_level(logging.INFO, logger="ganflow.train")
    cfg = TrainConfig.from_dict(RUN)
    result = train.train(cfg, stream(cfg, finished_run.data_dir), finished_run.fingerprint, run_dir, out_dir)
    assert result["resumed_from"] == str(snaps[0])
    warnings = [r.getMessage() for r in caplog.records if r.name == "ganflow.train" and r.levelno == logging.WARNING]
    assert len(warnings) == len(damaged), warnings
    for (snapshot, (name, files)), warning in zip(damaged.items(), warnings):
        aside = snapshot.with_name(snapshot.name + ".broken")
        assert sorted(p.name for p in aside.iterdir()) == files  # kept as it was, not deleted
        assert all(s in warning for s in (snapshot.name, name, aside.name)), warning
    assert train._snapshots(run_dir) == snaps  # made again, the damaged ones not counted by keep_snapshots
    assert_same_export(out_dir, finished_run.out_dir)
    assert_same_log(out_dir, finished_run.out_dir)


def test_without_an_intact_snapshot_training_starts_afresh(finished_run: Run, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    snaps = train._snapshots(run_dir)
    for snapshot in snaps:
        (snapshot / "meta.json").write_text("{}")
    (run_dir / "snapshots" / f"{snaps[-1].name}.broken").mkdir()  # one set aside before stays too
    assert train._newest_intact(run_dir) is None
    assert train._snapshots(run_dir) == []
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir()) == sorted(
        [f"{s.name}.broken" for s in snaps] + [f"{snaps[-1].name}.broken-1"])
    assert "training starts afresh" in caplog.text


def test_resume_refuses_changed_architecture_or_dataset(finished_run: Run, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    data, fingerprint = stream(TrainConfig.from_dict(RUN), finished_run.data_dir), finished_run.fingerprint
    # The first remedy offered is the way back to a state that resumes, then a separate
    # run: never deleting the snapshots, which are the only copy of the run's progress.
    stop = TrainConfig.from_dict({**RUN, "on_dataset_change": "stop"})
    with pytest.raises(SetupError, match="different dataset.*; to continue that run, restore the dataset") as e:
        train.train(stop, data, "other", run_dir, tmp_path / "out")
    assert "delete" not in str(e.value) and "new `run` name" in str(e.value)
    with pytest.raises(SetupError, match=r"different architecture \(channel_max 32 -> 16\); to continue that "
                                         r"run, set these settings back") as e:
        train.train(TrainConfig.from_dict({**RUN, "channel_max": 16}), data, fingerprint, run_dir, tmp_path / "out")
    assert "delete" not in str(e.value) and f"move {run_dir} aside" in str(e.value)
    with pytest.raises(SetupError, match="it froze 0 discriminator layers .* set freeze_d back to 0"):
        train.train(TrainConfig.from_dict({**RUN, "freeze_d": 2}), data, fingerprint, run_dir, tmp_path / "out")
    assert [p.name for p in train._snapshots(run_dir)] == [p.name for p in train._snapshots(finished_run.run_dir)]
    caplog.set_level(logging.INFO, logger="ganflow.train")
    result = train.train(TrainConfig.from_dict({**RUN, "g_lr": 0.001}), data, fingerprint, run_dir, tmp_path / "out")
    assert result["start_kimg"] == result["kimg"] == 0.768
    assert "g_lr 0.0025 -> 0.001" in caplog.text


def test_a_changed_dataset_continues_by_default_or_restarts_keeping_the_old_snapshots(
        finished_run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What plain `snakemake` does after images were added or removed: go on training
    (logged), or, asked to, start afresh with the old snapshots moved aside, not deleted."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    data = stream(TrainConfig.from_dict(RUN), finished_run.data_dir)
    longer = {**RUN, "total_kimg": 0.896}
    with caplog.at_level(logging.WARNING, logger="ganflow.train"):
        result = train.train(TrainConfig.from_dict(longer), data, "new" * 20, run_dir, tmp_path / "out")
    assert result["start_kimg"] == 0.768 and result["kimg"] == 0.896 and result["resumed_from"]
    assert "its weights go on training on the new data (train.on_dataset_change: continue" in caplog.text
    assert weights.read_json(train._snapshots(run_dir)[-1] / "meta.json")["dataset_fingerprint"] == "new" * 20
    before = [p.name for p in train._snapshots(run_dir)]
    caplog.clear()
    restart = TrainConfig.from_dict({**RUN, "total_kimg": 0.128, "on_dataset_change": "restart"})
    with caplog.at_level(logging.WARNING, logger="ganflow.train"):
        result = train.train(restart, data, finished_run.fingerprint, run_dir, tmp_path / "out")
    assert result["start_kimg"] == 0 and result["resumed_from"] is None and result["kimg"] == 0.128
    assert sorted(p.name for p in (run_dir / f"retired-{'new' * 4}" / "snapshots").iterdir()) == before
    assert "training starts afresh (train.on_dataset_change: restart); its snapshots are kept in" in caplog.text
    with pytest.raises(SetupError, match="'on_dataset_change' must be one of continue, restart, stop"):
        TrainConfig.from_dict({**RUN, "on_dataset_change": "ask"})


def test_init_from_shows_prior_model_in_first_frame(finished_run: Run, tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({**RUN, "total_kimg": 0.0})
    data = in_memory(blobs(8, seed=9))
    last = np.asarray(Image.open(read_tsv(finished_run.out_dir / "frames.tsv")[-1]["path"]))

    def first_frame(out: Path) -> np.ndarray:
        return np.asarray(Image.open(read_tsv(out / "frames.tsv")[0]["path"]))

    for n, source in enumerate([finished_run.run_dir, finished_run.out_dir]):
        result = train.train(cfg, data, "new-data", tmp_path / f"run{n}", tmp_path / f"out{n}", init_from=source)
        assert result["init_from"] is not None
        np.testing.assert_array_equal(first_frame(tmp_path / f"out{n}"), last)
    train.train(cfg, data, "new-data", tmp_path / "fresh", tmp_path / "fresh-out")
    assert np.abs(first_frame(tmp_path / "fresh-out").astype(int) - last).max() > 10
    with pytest.raises(SetupError, match=r"networks differ \(channel_max 16 here\); .* channel_max: 32"):
        train.train(TrainConfig.from_dict({**RUN, "channel_max": 16, "total_kimg": 0.0}), data, "new-data",
                    tmp_path / "bad", tmp_path / "bad-out", init_from=finished_run.run_dir)
    with pytest.raises(SetupError, match="holds no intact snapshot"):
        train.train(cfg, data, "new-data", tmp_path / "bad2", tmp_path / "bad2-out", init_from=tmp_path / "bad")


YELLOW = np.array([1.0, 0.9, -0.8], np.float32)  # the "character" of the transfer test: a yellow disk


def yellow_share(G: networks.Generator, seeds: int = 128) -> float:
    """The share of G's psi-1 samples with a yellow disk (over 5% of pixels near YELLOW):
    the transfer test's stand-in for the demo's tagger calling an image blonde."""
    px = np.concatenate([p for _, p in seed_images(G, range(seeds), 1.0)]).astype(np.float32) / 127.5 - 1
    return float(((np.linalg.norm(px - YELLOW, axis=-1) < 0.5).mean(axis=(1, 2)) > 0.05).mean())


def test_a_small_subset_transfers_onto_a_trained_model(finished_run: Run, tmp_path: Path) -> None:
    """The seed's character transfer in small: the finished run's model (random disk colours)
    fine-tuned on 40 images that all have a yellow disk, with init_from + Freeze-D + ADA,
    for 1 kimg: the share of yellow-disk samples goes from none to a large part, and the
    frozen discriminator layers are the base model's bit for bit."""
    images = blobs(40, seed=5)
    yy, xx = np.mgrid[0:16, 0:16] / 16
    for image, (cy, cx, radius) in zip(images, np.random.default_rng(5).uniform([0.3, 0.3, 0.15], [0.7, 0.7, 0.3],
                                                                              (40, 3))):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = YELLOW
    subset = pack(images, tmp_path)
    cfg = TrainConfig.from_dict({**RUN, "total_kimg": 1.024, "freeze_d": 2, "augment": True, "augment_p": 0.0,
                                 "ada_kimg": 5.0})
    result = train.train(cfg, stream(cfg, subset), records.dataset_fingerprint(subset), tmp_path / "run",
                         tmp_path / "out", init_from=finished_run.out_dir)
    assert result["init_from"] is not None and result["kimg"] == pytest.approx(1.024)
    (G0, D0, _), (G1, D1, _) = weights.load_export(finished_run.out_dir), weights.load_export(tmp_path / "out")
    before, after = yellow_share(G0), yellow_share(G1)
    assert before <= 0.02 and after >= 0.3, (before, after)
    for name in ("from_rgb", "conv0"):  # Freeze-D 2: fromrgb and the 16px block's conv0
        layer0, layer1 = (D0.from_rgb, D1.from_rgb) if name == "from_rgb" else (D0.block_16.conv0, D1.block_16.conv0)
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(layer0.weights, layer1.weights))
    assert not np.array_equal(D0.block_16.conv1.weights[0].numpy(), D1.block_16.conv1.weights[0].numpy())
    assert max(float(r["augment_p"]) for r in read_csv(tmp_path / "out" / "log.csv")) > 0  # ADA acted


def test_dataset_of_wrong_resolution_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"needs float32 \[16, 16, 3\]"):
        train.train(TrainConfig.from_dict(TINY), in_memory(blobs(4, res=32)), "x", tmp_path / "r", tmp_path / "o")


# ----- metric (augmentation: tests/test_augment.py) ---------------------------------------


def test_swd_is_small_for_same_distribution_and_grows_with_difference() -> None:
    a, b = blobs(64, 32, seed=1), blobs(64, 32, seed=2)
    levels = len(swd.laplacian_pyramid(a))
    assert levels == 2  # 32px band + 16px low-pass
    da = swd.descriptors_from_batches([a[:32], a[32:]], 32, seed=0)
    db = swd.descriptors_from_batches([b], 32, seed=1)
    dn = swd.descriptors_from_batches([np.random.default_rng(3).uniform(-1, 1, b.shape).astype(np.float32)], 32, 1)
    same, other = swd.swd(da, db)["swd"], swd.swd(da, dn)["swd"]
    assert 0 < same < 0.5 * other
    assert swd.swd(da, da)["swd"] < 1e-6


def test_a_log_from_before_a_new_column_keeps_its_rows(tmp_path: Path) -> None:
    """Resuming a run whose log.csv predates a column (data_wait_pct) keeps the earlier
    ticks; a line cut short by a kill is still dropped."""
    old = [c for c in trainlog.LOG_COLUMNS if c != "data_wait_pct"]
    rows = [",".join(str(i) if c in ("kimg", "tick") else "1" for c in old) for i in (1, 2)]
    (tmp_path / "log.csv").write_text("\n".join([",".join(old), *rows, "3,3,1"]) + "\n")
    read = trainlog.read_log(tmp_path / "log.csv")
    assert [r["kimg"] for r in read] == ["1", "2"] and list(read[0]) == trainlog.LOG_COLUMNS
    assert read[0]["data_wait_pct"] == "" and read[0]["loss_g"] == "1"
