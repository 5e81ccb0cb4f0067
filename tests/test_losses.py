"""One training iteration of ganflow against NVIDIA's official stylegan2-ada-pytorch, without
PyTorch: tests/fixtures/stylegan2_train/make_fixture.py ran the official StyleGAN2Loss and
training-loop logic once on a tiny 16px G and D with random weights and recorded every
random number it drew, every loss and every gradient; here ganflow's trainer takes the
same weights and the same random numbers and must give the same numbers.

Each phase starts from the official weights before it (so a difference shows in the phase
that makes it), and the optimiser test feeds the official gradients to ganflow's Adam.
Tolerances: float32 round-off in a few hundred thousand multiply-adds differing in order
(TF vs PyTorch convolutions), relative to each tensor's largest element.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ganflow import augment
from ganflow.train_config import TrainConfig
from ganflow.trainer import Trainer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stylegan2_train" / "stylegan2_train.npz"
# Largest difference relative to the largest element of each compared tensor.
GRAD_RTOL = 1e-4
LOSS_RTOL = 1e-5
# Adam steps are about lr (0.0025 x c) each, sign-like on a first step.
WEIGHT_ATOL = 1e-6


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def _same(a):
    return a


def _t(a):
    return a.T


def _hwio(a):
    """PyTorch [out, in, kh, kw] -> [kh, kw, in, out]."""
    return a.transpose(2, 3, 1, 0)


def official_names(trainer: Trainer) -> dict[str, tuple]:
    """Official parameter name ("G/..." or "D/...") -> (ganflow variable, layout map)."""
    G, D = trainer.G, trainer.D
    m: dict[str, tuple] = {}
    for i, fc in enumerate(G.mapping.fcs):
        m[f"G/mapping.fc{i}.weight"], m[f"G/mapping.fc{i}.bias"] = (fc.weight, _t), (fc.bias, _same)
    m["G/mapping.w_avg"] = (G.mapping.w_avg, _same)
    for block in G.synthesis.blocks:
        pre = f"G/synthesis.b{block.resolution}"
        if block.const is not None:
            m[f"{pre}.const"] = (block.const, lambda a: a.transpose(1, 2, 0)[None])
        for name in ("conv0", "conv1"):
            layer = getattr(block, name)
            if layer is None:
                continue
            key = f"{pre}.{name}"
            m.update({f"{key}.weight": (layer.conv.weight, _hwio),
                      f"{key}.affine.weight": (layer.conv.affine.weight, _t),
                      f"{key}.affine.bias": (layer.conv.affine.bias, _same), f"{key}.bias": (layer.bias, _same),
                      f"{key}.noise_strength": (layer.noise_strength, _same),
                      f"{key}.noise_const": (layer.noise_const, lambda a: a[None, :, :, None])})
        t = block.torgb
        m.update({f"{pre}.torgb.weight": (t.conv.weight, _hwio),
                  f"{pre}.torgb.affine.weight": (t.conv.affine.weight, _t),
                  f"{pre}.torgb.affine.bias": (t.conv.affine.bias, _same), f"{pre}.torgb.bias": (t.bias, _same)})
    top = D.resolution
    m[f"D/b{top}.fromrgb.weight"], m[f"D/b{top}.fromrgb.bias"] = (D.from_rgb.weight, _hwio), (D.from_rgb.bias, _same)
    for block, res in zip(D.blocks, [top // 2 ** i for i in range(len(D.blocks))]):
        for name in ("conv0", "conv1", "skip"):
            layer = getattr(block, name)
            m[f"D/b{res}.{name}.weight"] = (layer.weight, _hwio)
            if layer.bias is not None:
                m[f"D/b{res}.{name}.bias"] = (layer.bias, _same)
    channels = D.conv.bias.shape[0]

    def fc_nhwc(a):  # flattened channels-first upstream, channels-last here
        return a.T.reshape(channels, 4, 4, -1).transpose(1, 2, 0, 3).reshape(16 * channels, -1)

    m["D/b4.conv.weight"], m["D/b4.conv.bias"] = (D.conv.weight, _hwio), (D.conv.bias, _same)
    m["D/b4.fc.weight"], m["D/b4.fc.bias"] = (D.fc.weight, fc_nhwc), (D.fc.bias, _same)
    m["D/b4.out.weight"], m["D/b4.out.bias"] = (D.out.weight, _t), (D.out.bias, _same)
    return m


def load(trainer: Trainer, ref: dict, prefix: str, net: str) -> None:
    """Official weights of `net` from the fixture keys `prefix`/<net>/<name> (e.g. init/G);
    the constant noise buffers, stored once, from init/."""
    for key, (variable, layout) in official_names(trainer).items():
        if not key.startswith(net + "/"):
            continue
        source = f"{prefix}/{key}"
        if source not in ref:
            assert "noise_const" in key, f"the fixture has no {source}"
            source = f"init/{key}"
        variable.assign(layout(ref[source]))


def official_grads(trainer: Trainer, ref: dict, phase: str, net: str) -> list[np.ndarray]:
    """The official gradients of `phase`, in ganflow's order and layouts."""
    by_var = {id(v): (k, layout) for k, (v, layout) in official_names(trainer).items()}
    out = []
    for v in getattr(trainer, net).trainable_variables:
        key, layout = by_var[id(v)]
        out.append(layout(ref[f"grad/{phase}/{key.split('/', 1)[1]}"]))
    return out


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def assert_grads_equal(trainer: Trainer, ref: dict, phase: str, net: str, grads: list) -> float:
    names = {id(v): k for k, (v, _) in official_names(trainer).items()}
    worst = 0.0
    for v, got, want in zip(getattr(trainer, net).trainable_variables, grads, official_grads(trainer, ref, phase, net)):
        diff = rel_diff(got, want)
        worst = max(worst, diff)
        assert diff < GRAD_RTOL, f"{phase} gradient of {names[id(v)]}: relative difference {diff:.2e}"
    print(f"{phase}: largest relative gradient difference {worst:.2e}")
    return worst


def nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def trainer(ref) -> Trainer:
    cfg = TrainConfig.from_dict(dict(
        preset="stylegan2", resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
        mbstd_group=4, batch_size=4, g_lr=float(ref["config/lr"]), d_lr=float(ref["config/lr"]),
        r1_gamma=float(ref["config/r1_gamma"]), r1_interval=int(ref["config/d_reg_interval"]),
        pl_weight=float(ref["config/pl_weight"]), pl_decay=float(ref["config/pl_decay"]),
        pl_batch_shrink=int(ref["config/pl_batch_shrink"]), pl_interval=int(ref["config/g_reg_interval"]),
        augment=True, augment_p=float(ref["config/augment_p"]), ema_kimg=float(ref["config/ema_kimg"]),
        ema_rampup=float(ref["config/ema_rampup"]), mirror=False, conv_dtype="float32"))
    return Trainer(cfg)


def random_numbers(trainer: Trainer, ref: dict, phase: str) -> tuple[dict, dict]:
    """The official draws of a phase as ganflow's (per-image [k=1, N, ...], shared)."""
    rnd = f"rnd/{phase}"
    per, shared = {}, {}
    if phase != "Dreg":
        n = len(ref[f"{rnd}/z2"])
        per["z"], per["z2"] = ref[f"z/{phase}"][:n], ref[f"{rnd}/z2"]
        per["noise"] = [nhwc(ref[f"{rnd}/noise{i}"]) for i in range(len(trainer.G.synthesis.convs))]
        mixing = float(ref[f"{rnd}/mix_u"]) < trainer.cfg.style_mixing
        shared["cutoff"] = tf.constant(int(ref[f"{rnd}/cutoff"]) if mixing else trainer.G.num_ws, tf.int32)
    if phase == "Greg":
        size = trainer.cfg.resolution
        per["pl_noise"] = nhwc(ref[f"{rnd}/pl_noise"]) / math.sqrt(size * size)
    p = float(ref["config/augment_p"])
    for j, which in enumerate({"Gmain": ["fake"], "Greg": [], "Dmain": ["fake", "real"], "Dreg": ["real"]}[phase]):
        u, g = ref[f"{rnd}/aug{j}_u"], ref[f"{rnd}/aug{j}_n"]
        per[f"aug_{which}_u"], per[f"aug_{which}_n"] = u, g
        shared[f"margin_{which}"] = augment.batch_margin(trainer.cfg.resolution, p, u, g)
    shared["p"] = tf.constant(p)
    per = tf.nest.map_structure(lambda a: tf.constant(np.asarray(a, np.float32)[None]), per)
    return per, shared


def run_phase(trainer: Trainer, ref: dict, phase: str) -> tuple[list, dict]:
    per, shared = random_numbers(trainer, ref, phase)
    micro_fn = {"Gmain": trainer._g_main, "Greg": trainer._g_reg, "Dmain": trainer._d_main,
                "Dreg": trainer._d_reg}[phase]
    reals = tf.constant(nhwc(ref["reals"])) if phase[0] == "D" else None
    return trainer._accumulate(micro_fn, per, shared, reals, None)


# ----- each phase from the official weights before it ------------------------------------------


def test_generator_forward_matches_official(trainer, ref) -> None:
    """Mapping, style mixing and synthesis of the Gmain phase: what every G-side term needs."""
    load(trainer, ref, "init", "G")
    per, shared = random_numbers(trainer, ref, "Gmain")
    sub = tf.nest.map_structure(lambda t: t[0], per)
    ws, w = trainer._ws(sub, shared)
    assert rel_diff(ws, ref["out/Gmain/gen_ws"]) < 1e-5
    images = trainer.G.synthesis(ws, noise=sub["noise"])
    diff = rel_diff(images, nhwc(ref["out/Gmain/gen_img"]))
    print(f"generator images: relative difference {diff:.2e}")
    assert diff < 1e-4


def test_gmain_loss_and_gradients_match_official(trainer, ref) -> None:
    load(trainer, ref, "init", "G")
    load(trainer, ref, "init", "D")
    grads, stats = run_phase(trainer, ref, "Gmain")
    assert rel_diff(stats["loss_g"], ref["out/Gmain/Loss/G/loss"].mean()) < LOSS_RTOL
    np.testing.assert_allclose(stats["w_mean"], ref["out/Gmain/gen_ws"][:, 0].mean(0), rtol=1e-5, atol=1e-6)
    assert_grads_equal(trainer, ref, "Gmain", "G", grads)


def test_greg_path_length_matches_official(trainer, ref) -> None:
    """Path-length regularisation (weight 2, decay 0.01, batch shrink 2, gain = interval 4),
    the running mean moved inside the graph as upstream does."""
    load(trainer, ref, "after/Gmain", "G")
    trainer.pl_mean.assign(float(ref["pl_mean/before"]))
    grads, stats = run_phase(trainer, ref, "Greg")
    assert rel_diff(stats["pl"], ref["out/Greg/Loss/pl_penalty"].mean()) < LOSS_RTOL
    assert rel_diff(stats["pl_mean_new"], ref["pl_mean/after"]) < LOSS_RTOL
    assert_grads_equal(trainer, ref, "Greg", "G", grads)


def test_dmain_loss_and_gradients_match_official(trainer, ref) -> None:
    load(trainer, ref, "after/Greg", "G")  # fakes of the G both G phases have moved
    load(trainer, ref, "init", "D")
    grads, stats = run_phase(trainer, ref, "Dmain")
    assert rel_diff(stats["loss_d"], ref["out/Dmain/Loss/D/loss"].mean()) < LOSS_RTOL
    assert rel_diff(stats["d_real"], ref["out/Dmain/Loss/scores/real"].mean()) < 1e-4
    assert float(stats["sign_real"]) == float(ref["out/Dmain/Loss/signs/real"].mean())
    assert_grads_equal(trainer, ref, "Dmain", "D", grads)


def test_dreg_r1_through_augmentation_matches_official(trainer, ref) -> None:
    """R1 (gamma 1, gain = interval 16) with respect to the reals before augmentation."""
    load(trainer, ref, "after/Dmain", "D")
    grads, stats = run_phase(trainer, ref, "Dreg")
    assert rel_diff(stats["r1"], ref["out/Dreg/Loss/r1_penalty"].mean()) < 1e-4
    assert_grads_equal(trainer, ref, "Dreg", "D", grads)


# ----- optimiser, buffers and EMA ------------------------------------------------------------


def test_lazy_adam_steps_w_avg_and_ema_match_official(ref) -> None:
    """The official gradients through ganflow's optimisers (lr x c, betas ^ c, torch's
    epsilon) in the phase order, w_avg after each mapping phase, then the ramped EMA."""
    cfg = dict(preset="stylegan2", resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
               channel_max=16, mbstd_group=4, batch_size=4, g_lr=0.0025, d_lr=0.0025, r1_interval=16,
               pl_interval=4, ema_kimg=float(ref["config/ema_kimg"]), ema_rampup=float(ref["config/ema_rampup"]),
               conv_dtype="float32")
    t = Trainer(TrainConfig.from_dict(cfg))
    assert t.g_opt.learning_rate.numpy() == pytest.approx(0.0025 * 4 / 5)
    assert t.d_opt.beta_2 == pytest.approx(0.99 ** (16 / 17))
    load(t, ref, "init", "G")
    load(t, ref, "init", "D")
    for e, v in zip(t.G_ema.weights, t.G.weights):
        e.assign(v)
    for phase in ("Gmain", "Greg", "Dmain", "Dreg"):
        net = phase[0]
        t.apply(phase, [tf.constant(g) for g in official_grads(t, ref, phase, net)])
        if phase != "Dreg":
            t.update_buffers(phase, {"w_mean": tf.constant(ref[f"out/{phase}/gen_ws"][:, 0].mean(0))})
        names = official_names(t)
        compared = 0
        for key, (variable, layout) in names.items():
            if key.startswith(net + "/") and f"after/{phase}/{key}" in ref and "w_avg" not in key:
                np.testing.assert_allclose(variable.numpy(), layout(ref[f"after/{phase}/{key}"]), rtol=0,
                                           atol=WEIGHT_ATOL, err_msg=f"{key} after {phase}")
                compared += 1
        assert compared == len(getattr(t, net).trainable_variables)
        np.testing.assert_allclose(t.G.mapping.w_avg.numpy(), ref[f"after/{phase}/G/mapping.w_avg"], rtol=1e-6,
                                   atol=1e-7)
    beta = t.ema_beta(int(ref["config/cur_nimg"]))
    assert beta == pytest.approx(float(ref["config/ema_beta"]), rel=1e-12)
    t._ema_step(tf.constant(beta, tf.float32))
    names = official_names(t)
    compared = 0
    for key, (variable, layout) in names.items():
        ema_variable = t.G_ema.weights[[id(v) for v in t.G.weights].index(id(variable))] if key[0] == "G" else None
        if ema_variable is not None and f"ema/{key[2:]}" in ref:
            np.testing.assert_allclose(ema_variable.numpy(), layout(ref[f"ema/{key[2:]}"]), rtol=0,
                                       atol=WEIGHT_ATOL, err_msg=f"G_ema {key}")
            compared += 1
    assert compared == len(t.G.trainable_variables) + 1  # and w_avg
