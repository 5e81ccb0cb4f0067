"""Importing released StyleGAN2 weights: outputs equal to the official code's, and nothing in
a file runs.

The fixtures (tests/fixtures/stylegan2, made once by make_fixtures.py there with NVIDIA's
code and PyTorch) hold tiny random-weight models in each pickle format and the official
outputs for fixed inputs; these tests need neither PyTorch nor TensorFlow 1.
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import os
import pickle
import pickletools
import re
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ganflow import import_weights, latents, networks, rank, train, weights
from ganflow.runlog import SetupError
from ganflow.train_config import TrainConfig

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
# file -> its reference outputs: stylegan2-ada-pytorch snapshot (32px, conv_clamp 0.5) and the
# same networks through torch.save's zip format, stylegan3's StyleGAN2 (16px, conv_clamp 256),
# NVlabs/stylegan2 TensorFlow 1 (64px), a conditional stylegan2-ada-pytorch snapshot (8px, 4 classes)
CASES = {"ada-32.pkl": "ada-32.npz", "ada-32.pt": "ada-32.npz", "sg3-16.pkl": "sg3-16.npz",
         "tf1-64.pkl": "tf1-64.npz", "ada-cond-8.pkl": "ada-cond-8.npz"}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict:
    """Each fixture imported once, with the variable the fixtures' stand-in module source
    would write to if anything executed it."""
    marker = tmp_path_factory.mktemp("ran") / "executed"
    os.environ["GANFLOW_FIXTURE_RAN"] = str(marker)
    try:
        nets = {name: import_weights.import_networks(FIXTURES / name) for name in CASES}
    finally:
        del os.environ["GANFLOW_FIXTURE_RAN"]
    assert not marker.exists(), "the module source embedded in a fixture was executed"
    return nets


def _close(got, want, what: str) -> float:
    diff = float(np.abs(np.asarray(got) - want).max())
    assert diff <= TOLERANCE, f"{what}: max abs diff {diff:.2e}"
    return diff


@pytest.mark.parametrize("name", CASES)
def test_generator_images_equal_upstream(imported: dict, name: str) -> None:
    G, _, _ = imported[name]
    ref = np.load(FIXTURES / CASES[name])
    z, z2 = ref["z"], ref["z"][:2]
    c = ref["c"] if "c" in ref.files else None  # the conditional model's one-hot labels
    c2 = None if c is None else c[:2]
    _close(G.mapping(z, c=c), ref["ws"], "ws")
    _close(G(z, noise_mode="const", c=c), ref["img_psi1"], "images, psi 1")
    _close(G(z2, psi=0.7, noise_mode="const", c=c2), ref["img_psi07"], "images, psi 0.7")
    _close(G(z2, psi=0.5, cutoff=4, noise_mode="const", c=c2), ref["img_psi05_cut4"], "images, psi 0.5, cutoff 4")
    noise = [ref[f"noise{i}"][None, :, :, None] for i in range(len(G.synthesis.convs))]
    _close(G.synthesis(G.mapping(z2, c=c2), noise=noise), ref["img_noise"], "images, given noise")
    # The comparison can fail: the images are far from trivial, and the given noise matters.
    assert float(np.abs(ref["img_psi1"]).max()) > 1.0
    assert float(np.abs(ref["img_noise"] - ref["img_psi1"][:2]).max()) > 10 * TOLERANCE


@pytest.mark.parametrize("name", CASES)
def test_discriminator_logits_equal_upstream(imported: dict, name: str) -> None:
    _, D, _ = imported[name]
    ref = np.load(FIXTURES / CASES[name])
    images = ref["d_pixels"].astype(np.float32) / 127.5 - 1.0
    c, d_c = (ref["c"], ref["d_c"]) if "c" in ref.files else (None, None)
    assert D.architecture["mbstd_grouping"] == "strided" and D.mbstd_group == 4
    _close(D(images, c=d_c), ref["d_logits"], "D logits, batch of 8")
    _close(D(ref["img_psi1"], c=c), ref["d_logits_fakes"], "D logits of the generated images")
    if c is not None:  # (the 4-channel conditional D hardly feels its stddev feature: tested below instead)
        return
    # Batches of 8 are two stddev groups: ganflow's own consecutive groups would differ.
    consecutive = networks.Discriminator(**{**D.architecture, "mbstd_grouping": "consecutive"})
    for mine, theirs in zip(consecutive.weights, D.weights):
        mine.assign(theirs)
    assert float(np.abs(consecutive(images, c=d_c).numpy() - ref["d_logits"]).max()) > 10 * TOLERANCE


def test_architectures_read_from_the_files(imported: dict) -> None:
    G, D, info = imported["ada-32.pkl"]
    assert G.architecture == dict(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, mapping_lr_mul=0.01,
                                  channel_base=256, channel_max=16, conv_clamp=0.5)
    assert D.architecture == dict(resolution=32, channel_base=256, channel_max=16, mbstd_group=4,
                                  mbstd_grouping="strided", conv_clamp=0.5)
    assert info["imported_from"] == "ada-32.pkl" and len(info["source_sha256"]) == 64
    assert imported["sg3-16.pkl"][0].architecture["conv_clamp"] == 256  # stylegan3's default, read off the layers
    assert imported["tf1-64.pkl"][0].architecture["conv_clamp"] is None
    assert imported["tf1-64.pkl"][0].resolution == 64


def test_cli_writes_a_ganflow_export(tmp_path: Path) -> None:
    """`python -m ganflow.import_weights SRC OUT`: what load_export and ranking read."""
    out = tmp_path / "export"
    assert import_weights.main([str(FIXTURES / "tf1-64.pkl"), str(out)]) == 0
    manifest = json.loads((out / weights.MANIFEST).read_text())
    assert set(manifest["files"]) >= {"generator/generator.json", "discriminator/discriminator.json"}
    G, D, info = weights.load_export(out)
    ref = np.load(FIXTURES / "tf1-64.npz")
    _close(G(ref["z"], noise_mode="const"), ref["img_psi1"], "images after export and load")
    _close(D(ref["d_pixels"].astype(np.float32) / 127.5 - 1.0), ref["d_logits"], "D logits after export and load")
    assert info["source_format"].startswith("dnnlib.tflib") and info["num_ws"] == G.num_ws
    # Ranking's per-image twin (stddev group 1) keeps the imported architecture.
    single = rank.per_image(D)
    assert single.architecture["mbstd_group"] == 1 and single.architecture["mbstd_grouping"] == "strided"
    img = tf.constant(ref["img_psi1"])
    np.testing.assert_allclose(single(img).numpy()[1:2], single(img[1:2]).numpy(), rtol=1e-5, atol=1e-6)


def test_a_conditional_model_imports_with_its_labels_and_asks_for_them(imported: dict) -> None:
    """The conditional snapshot (4 classes): the label embedding and the projection
    discriminator are read (the parity tests above compare them with upstream's); its
    labels change the images and the logits, so those comparisons can fail; and a stage
    that has no labels to give gets one sentence instead of a wrong image."""
    G, D, _ = imported["ada-cond-8.pkl"]
    assert G.architecture["c_dim"] == 4 and "c_dim" not in imported["ada-32.pkl"][0].architecture
    assert {k: D.architecture[k] for k in ("c_dim", "cmap_dim", "c_mapping_layers")} == dict(
        c_dim=4, cmap_dim=4, c_mapping_layers=8)
    ref = np.load(FIXTURES / "ada-cond-8.npz")
    other = np.roll(ref["c"], 1, axis=0)  # each latent with another class
    assert float(np.abs(G(ref["z"], noise_mode="const", c=other) - ref["img_psi1"]).max()) > 0.1
    images = ref["d_pixels"].astype(np.float32) / 127.5 - 1.0
    assert float(np.abs(D(images, c=np.roll(ref["d_c"], 1, axis=0)) - ref["d_logits"]).max()) > 10 * TOLERANCE
    with pytest.raises(SetupError, match=r"this generator is conditional \(4 labels\): it needs labels c"):
        list(latents.seed_images(G, [0, 1], 1.0))
    with pytest.raises(SetupError, match=r"this discriminator is conditional \(4 labels\)"):
        D(images)


def test_a_conditional_export_keeps_its_labels_and_is_no_transfer_source(tmp_path: Path) -> None:
    """Written as an export and loaded back, the conditional networks still equal upstream's;
    training from them (which has no labels to give yet) stops with one sentence."""
    from test_train import TINY8, blobs, in_memory

    assert import_weights.main([str(FIXTURES / "ada-cond-8.pkl"), str(tmp_path / "export")]) == 0
    G, D, _ = weights.load_export(tmp_path / "export")
    ref = np.load(FIXTURES / "ada-cond-8.npz")
    _close(G(ref["z"], noise_mode="const", c=ref["c"]), ref["img_psi1"], "images after export and load")
    _close(D(ref["d_pixels"].astype(np.float32) / 127.5 - 1.0, c=ref["d_c"]), ref["d_logits"], "D logits after load")
    with pytest.raises(SetupError, match=r"it is a conditional model \(4 labels\), and ganflow trains "
                                         r"unconditional models only"):
        train.train(TrainConfig.from_dict(TINY8), in_memory(blobs(4, res=8)), "x", tmp_path / "run",
                    tmp_path / "out", init_from=tmp_path / "export")


def test_cli_refusal_is_one_sentence(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        import_weights.main([str(FIXTURES / "sg3-t-16.pkl"), str(tmp_path / "out")])
    assert "StyleGAN3" in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_unsupported_models_are_refused() -> None:
    with pytest.raises(SetupError, match=r"is a StyleGAN3 \(alias-free, -T or -R\) generator"):
        import_weights.import_networks(FIXTURES / "sg3-t-16.pkl")


# ----- nothing in a file runs --------------------------------------------------------------

class _Calls:
    """Pickles as a call of `func(*args)`: what a malicious file does on a plain pickle.load."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _global_name(func) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def _malicious(marker: Path) -> list[tuple[str, object, str]]:
    code = f"open({str(marker)!r}, 'w').write('ran')"
    return [("a shell command", _Calls(os.system, f"touch {marker}"), _global_name(os.system)),
            ("exec", _Calls(builtins.exec, code), "builtins.exec"),
            ("eval", _Calls(builtins.eval, code), "builtins.eval"),
            ("open for writing", _Calls(open, str(marker), "w"), _global_name(open))]


@pytest.mark.parametrize("case", range(4))
def test_a_pickle_that_would_run_something_is_refused(tmp_path: Path, case: int) -> None:
    marker = tmp_path / "marker"
    what, payload, global_name = _malicious(marker)[case]
    # Hidden where the weights would be, in a snapshot that otherwise looks like one.
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": {"state": [1, 2, payload]}, "D": None, "training_set_kwargs": {}}))
    with pytest.raises(SetupError) as exc:
        import_weights.import_networks(path)
    message = str(exc.value)
    assert global_name in message and "nothing in the file was run" in message, message
    assert "\n" not in message
    assert not marker.exists(), f"{what} ran"


def test_the_payloads_are_real(tmp_path: Path) -> None:
    """What the refusals prevent: each payload pickles to a call of its global (GLOBAL or
    STACK_GLOBAL, then REDUCE), which a plain unpickler would run. Read statically with
    pickletools: no standard unpickler runs anywhere in this project, tests included."""
    for _, payload, global_name in _malicious(tmp_path / "marker"):
        ops = list(pickletools.genops(pickle.dumps(payload)))
        names = [op.name for op, _, _ in ops]
        strings = [arg for op, arg, _ in ops if isinstance(arg, str)]
        module, _, name = global_name.rpartition(".")
        assert "REDUCE" in names and (global_name.replace(".", " ") in strings or {module, name} <= set(strings))


def test_storage_blobs_and_tf1_networks_are_checked_too(tmp_path: Path) -> None:
    """A torch storage (torch.save bytes inside the pickle) and a TF1 network's state are
    read by the same restricted unpickler."""
    marker = tmp_path / "marker"
    command = _Calls(os.system, f"touch {marker}")
    # torch.save's legacy layout (magic number, protocol, system info, object) as the bytes
    # of a torch.storage._load_from_bytes call: GLOBAL, BINBYTES, TUPLE1, REDUCE, STOP.
    inner = b"".join(pickle.dumps(x, protocol=2) for x in (import_weights._TORCH_MAGIC, 1001,
                                                             {"little_endian": True}, command))
    blob = (b"\x80\x03ctorch.storage\n_load_from_bytes\n" + b"B" + len(inner).to_bytes(4, "little") + inner
            + b"\x85R.")
    net = _TFNetwork("G_main", {})
    net.state["variables"] = [("dlatent_avg", command)]
    tf1 = io.BytesIO()
    _TFPickler(tf1, protocol=3).dump((net, net, net))
    for data in (blob, tf1.getvalue()):
        path = tmp_path / "evil.pkl"
        path.write_bytes(data)
        with pytest.raises(SetupError, match=_global_name(os.system).replace(".", r"\.")):
            import_weights.import_networks(path)
        assert not marker.exists()


def test_object_arrays_and_foreign_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"G_ema": np.array([1, "a"], dtype=object)}))
    with pytest.raises(SetupError, match="numpy dtype 'O8'"):
        import_weights.import_networks(path)
    path.write_bytes(pickle.dumps({"G": np.zeros(3, np.float32), "note": "not a network"}))
    with pytest.raises(SetupError, match="holds neither"):
        import_weights.import_networks(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(SetupError, match="cannot read .* as a network pickle"):
        import_weights.import_networks(path)


def test_torch_is_never_imported() -> None:
    assert "torch" not in sys.modules


class _TFNetwork:
    """Pickles as NVlabs' dnnlib.tflib.network.Network does (its state), for made-up networks."""

    def __init__(self, func: str, static_kwargs: dict, components: dict | None = None) -> None:
        self.state = {"version": 4, "name": func, "static_kwargs": static_kwargs, "components": components or {},
                      "build_module_src": "raise SystemExit('executed')", "build_func_name": func, "variables": []}

    def __getstate__(self) -> dict:
        return self.state


class _TFPickler(pickle._Pickler):  # pylint: disable=protected-access
    """Names _TFNetwork as dnnlib.tflib.network.Network, as the real files do."""

    def save_global(self, obj, name=None):
        if obj is _TFNetwork:
            self.write(pickle.GLOBAL + b"dnnlib.tflib.network\nNetwork\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


@pytest.mark.parametrize("change, why", [
    ({"architecture": "resnet"}, r"uses the 'resnet' generator architecture"),
    ({"label_size": 10}, r"is a conditional model \(label_size 10"),
    ({"synthesis": "G_synthesis_stylegan_revised"}, r"built by G_synthesis_stylegan_revised \(StyleGAN2 configs a-d"),
    ({"use_spectral_norm": True, "where": "D"}, r"was built with use_spectral_norm=True"),
    ({"mystery_option": 3}, r"an option this importer does not know \(mystery_option=3\)"),
])
def test_tensorflow_variants_ganflow_cannot_run_are_refused(tmp_path: Path, change: dict, why: str) -> None:
    change = dict(change)
    synthesis, where = change.pop("synthesis", "G_synthesis_stylegan2"), change.pop("where", "G")
    kwargs = {"resolution": 32, "num_channels": 3, "label_size": 0}
    g_kwargs = {**kwargs, **change} if where == "G" else kwargs
    d_kwargs = {**kwargs, **change} if where == "D" else kwargs
    G = _TFNetwork("G_main", g_kwargs, {"mapping": _TFNetwork("G_mapping", g_kwargs),
                                        "synthesis": _TFNetwork(synthesis, g_kwargs)})
    path = tmp_path / "tf.pkl"
    with open(path, "wb") as f:
        _TFPickler(f, protocol=3).dump((G, _TFNetwork("D_stylegan2", d_kwargs), G))
    with pytest.raises(SetupError, match=why):
        import_weights.import_networks(path)


def _reconstruct_standin(meta):  # pickled under torch_utils.persistence's name by _TorchPickler
    raise AssertionError("never called: the importer has its own")


def _easydict_standin():  # pickled as dnnlib.util.EasyDict
    raise AssertionError("never called: the importer has its own")


_STANDINS = {_reconstruct_standin: b"torch_utils.persistence\n_reconstruct_persistent_obj\n",
             _easydict_standin: b"dnnlib.util\nEasyDict\n"}


class _TorchPickler(pickle._Pickler):  # pylint: disable=protected-access
    """Writes what import_weights.read_pickle read back in the persistence format."""

    def reducer_override(self, obj):
        if any(obj is standin for standin in _STANDINS):
            return obj.__name__  # a global: save_global below names it
        if isinstance(obj, import_weights._Persistent):
            return _reconstruct_standin, ({"type": "class", "version": 6, "class_name": obj.class_name,
                                           "module_src": obj.module_src, "state": obj.state},)
        if isinstance(obj, import_weights._EasyDict):
            return _easydict_standin, (), None, None, iter(obj.items())
        return NotImplemented

    def save_global(self, obj, name=None):
        if any(obj is standin for standin in _STANDINS):
            self.write(pickle.GLOBAL + _STANDINS[obj])
            self.memoize(obj)
            return
        super().save_global(obj, name)


@pytest.mark.parametrize("net, path, key, value, why", [
    ("G_ema", "synthesis.b16", "architecture", "resnet", r"uses the 'resnet' generator architecture"),
    ("D", "b32", "architecture", "orig", r"32px discriminator block that is missing or not residual"),
    ("G_ema", "synthesis.b8.conv0", "_buffers.resample_filter", np.full((4, 4), 1 / 16, np.float32),
     r"filter other than \[1,3,3,1\]"),
    ("G_ema", "", "img_channels", 1, r"makes 1-channel images"),
    ("G_ema", "synthesis.b8.conv1", "conv_clamp", 256, r"clamps its layers differently"),
    ("G_ema", "synthesis.b8.conv1", "_parameters.bias", None, r"SynthesisLayer without its bias"),
])
def test_pytorch_variants_ganflow_cannot_run_are_refused(tmp_path: Path, net: str, path: str, key: str, value,
                                                         why: str) -> None:
    out = _changed_ada(tmp_path, [(net, path, key, value)])
    with pytest.raises(SetupError, match=why):
        import_weights.import_networks(out)


def test_pytorch_round_trip_of_the_test_pickler(tmp_path: Path) -> None:
    """The pickler above writes what the importer takes, unchanged: the refusals above are
    the changes' doing."""
    out = tmp_path / "same.pkl"
    with open(out, "wb") as f:
        _TorchPickler(f, protocol=4).dump(import_weights.read_pickle(FIXTURES / "ada-32.pkl"))
    G, _, _ = import_weights.import_networks(out)
    ref = np.load(FIXTURES / "ada-32.npz")
    _close(G(ref["z"], noise_mode="const"), ref["img_psi1"], "images after re-pickling")


def test_training_starts_from_a_released_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """init_from an import: the trainer builds the model's networks (conv_clamp included)
    and before its first step exports the released generator unchanged."""
    from ganflow import train
    from ganflow.train_config import TrainConfig

    imported_dir = tmp_path / "imported"
    import_weights.import_weights(FIXTURES / "ada-32.pkl", imported_dir)
    settings = dict(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16,
                    batch_size=4, mbstd_group=2, augment=False, total_kimg=0.0, ema_rampup=0.0, swd_images=16,
                    swd_patches=8, grid=[2, 2])
    reals = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    data = lambda start: tf.data.Dataset.from_tensor_slices(reals).repeat().skip(start)  # noqa: E731
    with pytest.raises(SetupError, match=r"its networks differ \(conv_clamp None here\); to start from it, set "
                                         r"these train settings to its values: conv_clamp: 0.5"):
        train.train(TrainConfig.from_dict(settings), data, "x", tmp_path / "bad", tmp_path / "bad-out",
                    init_from=imported_dir)
    caplog.set_level(logging.INFO, logger="ganflow.train")
    result = train.train(TrainConfig.from_dict({**settings, "conv_clamp": 0.5}), data, "x", tmp_path / "run",
                         tmp_path / "out", init_from=imported_dir)
    assert result["init_from"] == str(imported_dir)
    assert "mbstd_group 4 in" in caplog.text  # a weightless difference, said and allowed
    G, _, _ = weights.load_export(tmp_path / "out")
    ref = np.load(FIXTURES / "ada-32.npz")
    _close(G(ref["z"], noise_mode="const"), ref["img_psi1"], "images of the transferred generator")


def test_the_workflow_imports_a_released_init_from_before_training(tmp_path, cascade_path):
    """train.init_from: model.pkl plans the import, and round 1 trains from it."""
    from workflow import jobs_planned, snakemake, tiny_config

    tiny_config(tmp_path, cascade_path, **{"train.init_from": str(FIXTURES / "ada-32.pkl")})
    planned = jobs_planned(tmp_path)
    assert planned["import_weights"] == 1 and planned["train"] == 2
    out = snakemake(tmp_path, "--dry-run").stdout
    round_1 = out[out.index("checkpoint train:"):].split("\n\n")[0]
    assert "wildcards: r=1" in round_1 and "input: results/demo/round-1/dataset/dataset.json, " \
        "results/demo/imported/export.json" in round_1, round_1


@pytest.mark.slow
def test_the_workflow_makes_samples_figures_and_videos_from_a_released_model(tmp_path, cascade_path):
    """`generator: model.pkl` and plain `snakemake`: the model is imported, and samples,
    figures and walk videos come from it; no data stage and no training runs."""
    from PIL import Image

    from workflow import jobs_planned, snakemake, tiny_config

    tiny_config(tmp_path, cascade_path, generator=str(FIXTURES / "ada-32.pkl"),
                **{"edit.methods": ["sefa"], "edit.k": 2, "edit.apply": ["sefa-1/-2/seed4"]})
    planned = jobs_planned(tmp_path)
    assert {"import_weights", "samples", "figures", "videos_walk", "edit_sefa", "edit"} <= planned.keys()
    assert not {"ids", "faces", "dataset", "train", "demo"} & planned.keys()
    snakemake(tmp_path)
    res = tmp_path / "results/demo"
    G, _, _ = import_weights.import_networks(FIXTURES / "ada-32.pkl")
    ws = latents.map_latents(G, latents.seed_z([3], G.z_dim), 0.7)
    expected = latents.render(G, ws, noise_mode="const")[0]
    assert np.array_equal(np.asarray(Image.open(res / "samples/seeds/seed000003.png")), expected)
    assert all((res / f"figures/{f}.png").is_file() for f in ("truncation", "style_mixing"))
    assert (res / "videos/interpolation-grid.mp4").stat().st_size > 0
    assert all((res / f"edits/sefa.{ext}").stat().st_size > 0 for ext in ("png", "mp4"))
    edited = np.asarray(Image.open(res / "edits/apply/sefa-1/-2/seed4.png"))
    unedited = latents.render(G, latents.map_latents(G, latents.seed_z([4], G.z_dim), 0.7), noise_mode="const")[0]
    assert edited.shape == unedited.shape and np.abs(edited.astype(int) - unedited).mean() > 1  # moved
    assert jobs_planned(tmp_path) == {}


# ----- hostile files: checked before anything is read past, allocated or built (issue 22) ----
#
# Each file below is made here with the standard pickler's *dumping* side or with bytes
# assembled by hand; none is ever loaded with the standard unpickler.

class _Global:
    """Pickles as `GLOBAL module name`: a name a crafted file gives (callable only so that a
    reduce tuple may hold it; never called)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args):
        raise AssertionError("never called")


class _Reduce:
    """Pickles as a call of `func(*args)` (REDUCE), then BUILD with `state` if given."""

    def __init__(self, func: _Global, *args, state=None) -> None:
        self.func, self.args, self.state = func, args, state


class _Pid:
    """Pickles as a persistent id (BINPERSID): how torch.save refers to a storage."""

    def __init__(self, *pid) -> None:
        self.pid = pid


class _Crafter(pickle._Pickler):  # pylint: disable=protected-access
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Pid) else None

    def reducer_override(self, obj):
        if isinstance(obj, _Global):
            return obj.name  # a global: save_global below names it
        if isinstance(obj, _Reduce):
            return (obj.func, obj.args) if obj.state is None else (obj.func, obj.args, obj.state)
        return NotImplemented

    def save_global(self, obj, name=None):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _craft(obj, protocol: int = 2) -> bytes:
    f = io.BytesIO()
    _Crafter(f, protocol=protocol).dump(obj)
    return f.getvalue()


_FLOAT = _Global("torch", "FloatStorage")


def _storage(key: str, numel: int, legacy: bool = False) -> _Pid:
    return _Pid("storage", _FLOAT, key, "cpu", numel, *((None,) if legacy else ()))


def _rebuilt(storage, offset: int, size: tuple, stride: tuple) -> _Reduce:
    return _Reduce(_Global("torch._utils", "_rebuild_tensor_v2"), storage, offset, size, stride, False,
                   _Reduce(_Global("collections", "OrderedDict")))


def _torch_zip(obj, storages: dict, compression: int = zipfile.ZIP_STORED) -> bytes:
    """torch.save's zip layout: archive/data.pkl, archive/byteorder, archive/data/<key>."""
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", compression) as z:
        z.writestr("archive/data.pkl", _craft(obj))
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
    return f.getvalue()


def _torch_legacy(obj, storages: dict, info=None) -> bytes:
    """torch.save's legacy layout: magic, protocol, system info, the object, the storage keys,
    then each storage as its 8-byte element count and bytes. storages: key -> (count, bytes)."""
    head = b"".join(pickle.dumps(x, protocol=2) for x in (
        import_weights._TORCH_MAGIC, 1001, {"little_endian": True} if info is None else info))
    tail = b"".join(count.to_bytes(8, "little") + raw for count, raw in storages.values())
    return head + _craft(obj) + pickle.dumps(list(storages), protocol=2) + tail


def _floats(n: int) -> bytes:
    return np.arange(n, dtype="<f4").tobytes()


def _write(tmp_path: Path, data: bytes, name: str = "crafted.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _one_sentence(message: str, path: Path) -> str:
    assert "\n" not in message and len(message) < len(str(path)) + 400, message[:500]
    assert ": )" not in message and "()" not in message, message
    return message


def _refused(path: Path, read=import_weights.import_networks) -> tuple[str, int]:
    """The refusal `read(path)` ends with, and the most memory Python and numpy held meanwhile
    (tracemalloc sees numpy's allocations, zeroed pages included)."""
    tracemalloc.start()
    try:
        with pytest.raises(SetupError) as exc:
            read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return _one_sentence(str(exc.value), path), peak


_MB = 1 << 20
_S16 = _storage("0", 16)  # a storage of 16 floats


@pytest.mark.parametrize("tensor, why", [
    # What a hostile review imported with exit 0 (4 KB of heap exported as weights): a view of
    # 1024 numbers on a tensor that repeats one stored float, read 4 bytes apart.
    (_rebuilt(_rebuilt(_storage("1", 1), 0, (1024,), (0,)), 0, (1024,), (1,)), "repeats one stored number"),
    (_rebuilt(_rebuilt(_S16, 0, (16,), (1,)), 0, (4, 4), (4, 1)), "built on an array instead of a torch storage"),
    (_rebuilt(_Reduce(_Global("numpy.core.numeric", "_frombuffer"), b"\0" * 64, _Reduce(
        _Global("numpy", "dtype"), "f4", False, True), (16,), "C"), 0, (16,), (1,)),
     "built on an array instead of a torch storage"),
    (_rebuilt(_S16, 0, (1024,), (0,)), r"repeats one stored number along a dimension \(strides \[0\]\)"),
    (_rebuilt(_S16, 0, (9, 8), (1, 1)), "holds a tensor of 72 numbers .* from a storage of 16"),
    (_rebuilt(_S16, 10, (8,), (1,)), "reaching past its storage of 16 numbers"),
    (_rebuilt(_S16, 2 ** 62, (2,), (1,)), "reaching past its storage"),
    (_rebuilt(_S16, 0, (4, 4), (4, -1)), "holds -1 where a size or offset belongs"),
    (_rebuilt(_S16, 0, (4, 4), (4,)), r"holds a tensor of shape \[4, 4\] with strides \[4\]"),
])
def test_a_tensor_reads_only_its_own_storage(tmp_path: Path, tensor, why: str) -> None:
    """A tensor is copied out of a storage the file stores, by index, after checking every
    index: never a view of another tensor or array, never a number repeated along a
    dimension, never more numbers than its storage holds."""
    path = _write(tmp_path, _torch_zip({"G_ema": tensor}, {"0": _floats(16), "1": _floats(1)}))
    message, _ = _refused(path, import_weights.read_pickle)
    assert re.search(why, message), message
    # What a well-formed tensor on the same storage reads: its own numbers, copied.
    good = _write(tmp_path, _torch_zip({"G_ema": _rebuilt(_S16, 1, (3, 2), (1, 3))}, {"0": _floats(16)}), "ok.pt")
    array = import_weights.read_pickle(good)["G_ema"]
    assert array.flags.owndata and array.tolist() == [[1, 4], [2, 5], [3, 6]]


def test_a_refused_tensor_ends_the_command_in_one_sentence(tmp_path: Path) -> None:
    tensor = _rebuilt(_rebuilt(_storage("0", 1), 0, (1024,), (0,)), 0, (1024,), (1,))
    path = _write(tmp_path, _torch_zip({"G_ema": tensor, "D": tensor}, {"0": _floats(1)}))
    with pytest.raises(SystemExit) as exc:
        import_weights.main([str(path), str(tmp_path / "out")])
    _one_sentence(str(exc.value), path)
    assert "repeats one stored number" in str(exc.value) and not (tmp_path / "out").exists()


def test_legacy_torch_files_are_read_in_two_passes(tmp_path: Path) -> None:
    """torch.save's legacy layout stores the storages after the pickle: the tensors come out
    right (the pickle is read again once the storages are), views of a storage included."""
    obj = {"a": _rebuilt(_storage("k", 16, legacy=True), 2, (2, 3), (3, 1)),
           "b": _rebuilt(_Pid("storage", _FLOAT, "k", "cpu", 16, ("v", 4, 8)), 1, (4,), (1,))}
    data = import_weights.read_pickle(_write(tmp_path, _torch_legacy(obj, {"k": (16, _floats(16))})))
    assert data["a"].tolist() == [[2, 3, 4], [5, 6, 7]] and data["b"].tolist() == [5, 6, 7, 8]
    view_past = {"a": _rebuilt(_Pid("storage", _FLOAT, "k", "cpu", 16, ("v", 12, 8)), 0, (1,), (1,))}
    message, _ = _refused(_write(tmp_path, _torch_legacy(view_past, {"k": (16, _floats(16))})),
                          import_weights.read_pickle)
    assert "storage view reaching past its storage (12 + 8 of 16 numbers)" in message


@pytest.mark.parametrize("layout", ["legacy", "legacy inside a pickle"])
def test_a_storage_larger_than_the_file_is_never_allocated(tmp_path: Path, layout: str) -> None:
    """A storage declaring 2**29 floats (2 GiB) that stores 4 bytes: refused before anything is
    allocated for it (it was zero-filled first, then compared with the stored bytes)."""
    numel = 2 ** 29
    blob = _torch_legacy({"w": _rebuilt(_storage("0", numel, legacy=True), 0, (4,), (1,))}, {"0": (numel, b"\0" * 4)})
    if layout == "legacy inside a pickle":  # how stylegan2-ada-pytorch pickles a storage
        blob = _craft({"G_ema": _Reduce(_Global("torch.storage", "_load_from_bytes"), blob)}, protocol=3)
    message, peak = _refused(_write(tmp_path, blob))
    assert f"declares a torch storage of {numel} numbers (2048 MiB), more than the whole file holds" in message
    assert peak < 200 * _MB, f"{peak / _MB:.0f} MB allocated"


def _zip_with_zeros(tmp_path: Path, entries: dict, obj, pickled: bytes | None = None) -> Path:
    """A torch zip whose storages (or data.pkl, given as a generator of chunks) are deflated
    zeros: small files that unpack to much more. entries: key -> size in bytes."""
    path = tmp_path / "bomb.pt"
    chunk = bytes(_MB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("archive/data.pkl", "w", force_zip64=True) as f:
            for part in pickled if pickled is not None else [_craft(obj)]:
                f.write(part)
        z.writestr("archive/byteorder", "little")
        for key, size in entries.items():
            with z.open(f"archive/data/{key}", "w", force_zip64=True) as f:
                for start in range(0, size, _MB):
                    f.write(chunk[:min(_MB, size - start)])
    return path


def test_zip_bombs_are_refused_before_unpacking(tmp_path: Path) -> None:
    """Zip entries declare how much they unpack to: checked against their storage, their
    compressed size and the whole file before one byte is unpacked."""
    numel = 128 * _MB // 4  # a storage of 128 MiB of zeros, deflated to ~130 KB
    path = _zip_with_zeros(tmp_path, {"0": numel * 4}, {"G_ema": _rebuilt(_storage("0", numel), 0, (4,), (1,))})
    assert path.stat().st_size < _MB
    message, peak = _refused(path)
    assert re.search(r"declares that archive/data/0 unpacks to 128 MiB from \d+ bytes, far more than network "
                     r"weights compress \(a zip bomb\?\); ganflow unpacked nothing", message), message
    assert peak < 20 * _MB, f"{peak / _MB:.0f} MB allocated"

    # data.pkl itself: a pickle holding 128 MiB of zero bytes
    size = 128 * _MB
    pickled = [b"\x80\x04\x8e" + size.to_bytes(8, "little")] + [bytes(_MB)] * 128 + [b"."]
    message, peak = _refused(_zip_with_zeros(tmp_path, {}, None, pickled))
    assert "declares that archive/data.pkl unpacks to 128 MiB" in message and peak < 20 * _MB

    # 40 storages of 1 MiB each: each small enough, together 40 MiB from ~50 KB
    obj = {f"w{i}": _rebuilt(_storage(str(i), _MB // 4), 0, (4,), (1,)) for i in range(40)}
    path = _zip_with_zeros(tmp_path, {str(i): _MB for i in range(40)}, obj)
    message, peak = _refused(path)
    assert "unpacks to more than 10 times its own size, far more than network weights compress" in message
    assert peak < 30 * _MB, f"{peak / _MB:.0f} MB allocated"

    # an entry whose size differs from its storage's is not read
    path = _write(tmp_path, _torch_zip({"w": _rebuilt(_storage("0", 4), 0, (4,), (1,))}, {"0": _floats(5)}))
    assert "stores 20 bytes in archive/data/0 where its pickle declares 16" in _refused(path)[0]


def test_allowed_functions_cannot_amplify_the_file(tmp_path: Path) -> None:
    """An allowed function called over and over on the same data (here 4000 copies of one
    100 KB string encoded to bytes: 400 MB from a 130 KB file) is stopped by the load's
    allowance, a few times what the file stores."""
    text = "x" * 100_000
    call = b"h\x00h\x01h\x02\x86R"  # BINGET the function, the string and 'latin1'; TUPLE2; REDUCE
    data = (b"\x80\x02c_codecs\nencode\nq\x00X" + len(text).to_bytes(4, "little") + text.encode()
            + b"q\x01X\x06\x00\x00\x00latin1q\x02(" + call * 4000 + b"l.")
    message, peak = _refused(_write(tmp_path, data), import_weights.read_pickle)
    assert re.search(r"would unpack into more than 33 MiB \(6 times the \d+ bytes it stores\), more than any "
                     r"network file does", message), message
    assert peak < 100 * _MB, f"{peak / _MB:.0f} MB allocated"


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if a network is built: what a file claims is checked first."""
    def refuse(**arch):
        raise AssertionError(f"a network was built before the file's weights were checked: {arch}")
    monkeypatch.setattr(networks, "Generator", refuse)
    monkeypatch.setattr(networks, "Discriminator", refuse)


@pytest.mark.parametrize("g_kwargs, why", [
    ({"resolution": 16384}, r"claims resolution 16384, where ganflow imports powers of two from 8 to 4096"),
    ({"resolution": 1024}, r"its generator has no mapping.fc0.weight"),
    ({"resolution": 64, "fmap_max": 16384}, r"claims fmap_max 16384, where ganflow imports fmap_max from 1 to 4096"),
    ({"resolution": 64, "dlatent_size": 1 << 30}, r"claims dlatent_size 1073741824, where ganflow imports "
                                                  r"dlatent_size from 1 to 4096"),
    ({"resolution": 64, "mapping_layers": 10 ** 6}, r"claims mapping_layers 1000000"),
])
def test_tensorflow_claims_are_checked_before_building(tmp_path: Path, nothing_built, g_kwargs: dict,
                                                       why: str) -> None:
    """A TF1 file claiming 16384px once built a 4.5 GB network before looking at its
    variables: the claims are capped, and the variables must be there, before building."""
    kwargs = {"num_channels": 3, "label_size": 0, **g_kwargs}
    G = _TFNetwork("G_main", kwargs, {"mapping": _TFNetwork("G_mapping", kwargs),
                                      "synthesis": _TFNetwork("G_synthesis_stylegan2", kwargs)})
    path = tmp_path / "tf.pkl"
    with open(path, "wb") as f:
        _TFPickler(f, protocol=3).dump((G, _TFNetwork("D_stylegan2", {"resolution": 64}), G))
    message, peak = _refused(path)
    assert re.search(why, message), message
    assert peak < 50 * _MB


def _changed_ada(tmp_path: Path, changes: list) -> Path:
    """ada-32.pkl with changes (net, path of modules, key path in the state, value), re-pickled."""
    data = import_weights.read_pickle(FIXTURES / "ada-32.pkl")
    for net, modules, key, value in changes:
        record = data[net]
        for name in filter(None, modules.split(".")):
            record = record.child(name)
        target = record.state
        *parents, last = key.split(".")
        for name in parents:
            target = target[name]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value(target[last]) if callable(value) else value
    out = tmp_path / "changed.pkl"
    with open(out, "wb") as f:
        _TorchPickler(f, protocol=4).dump(data)
    return out


_DELETE = object()


@pytest.mark.parametrize("changes, why", [
    ([("G_ema", "synthesis", "_init_kwargs.channel_max", 16384), ("G_ema", "synthesis", "_init_kwargs.channel_base",
                                                                   1 << 24)],
     r"claims channel_max 16384, where ganflow imports channel_max from 1 to 4096"),
    ([("G_ema", "synthesis", "_init_kwargs.channel_max", 1024), ("G_ema", "synthesis", "_init_kwargs.channel_base",
                                                                  4096)],
     r"its generator's b4.const has shape \[1, 4, 4, 16\] where a ganflow StyleGAN2 of the same settings has "
     r"\[1, 4, 4, 1024\]"),
    ([("D", "", "_init_kwargs.channel_max", 512), ("D", "", "_init_kwargs.channel_base", 32768)],
     r"its discriminator's b32.fromrgb.weight has shape \[1, 1, 3, 8\] where .* has \[1, 1, 3, 512\]"),
    ([("G_ema", "mapping", "_buffers.w_avg", _DELETE), ("G_ema", "", "w_dim", 1 << 30)],
     r"claims w_dim 1073741824, where ganflow imports w_dim from 1 to 4096"),
    ([("G_ema", "", "img_resolution", 2 ** 40)], r"claims img_resolution 1099511627776, where ganflow imports powers"),
    ([("G_ema", "", "z_dim", 64)], r"its generator's mapping.fc0.weight has shape \[32, 32\] where .* \[64, 32\]"),
    ([("D", "b4.mbstd", "group_size", 10 ** 9)], r"claims mbstd group_size 1000000000, where ganflow imports"),
    ([("G_ema", "synthesis.b8.conv1", "conv_clamp", float("nan"))], r"claims conv_clamp nan, where ganflow needs a "
                                                                    r"positive finite number"),
])
def test_pytorch_claims_are_checked_before_building(tmp_path: Path, nothing_built, changes: list, why: str) -> None:
    """channel_max 16384 once tried 9.7 GB per layer, a missing w_avg allocated w_dim zeros:
    claims are capped and the weights each implies are compared with the file's arrays
    before anything is allocated for them or built."""
    message, peak = _refused(_changed_ada(tmp_path, changes))
    assert re.search(why, message), message
    assert peak < 50 * _MB


def test_the_checked_shapes_are_the_networks_own(imported: dict) -> None:
    """The weights checked before building are exactly the variables of the networks built."""
    for G, D, _ in imported.values():
        for net, shapes in ((G, import_weights._generator_shapes(G.architecture)),
                            (D, import_weights._discriminator_shapes(D.architecture))):
            assert len(shapes) == len(net.weights)
            assert sum(int(np.prod(s)) for s in shapes.values()) == sum(int(np.prod(v.shape)) for v in net.weights)


@pytest.mark.parametrize("net, modules, key, bad, why", [
    ("G_ema", "synthesis.b8.conv1", "_parameters.weight", np.nan,
     r"its generator's b8.conv1.weight holds 1 NaN or infinite values"),
    ("G_ema", "mapping", "_buffers.w_avg", np.inf, r"its generator's mapping.w_avg holds 1 NaN or infinite values"),
    ("D", "b4.fc", "_parameters.bias", -np.inf, r"its discriminator's b4.fc.bias holds 1 NaN or infinite values"),
])
def test_nan_and_infinite_weights_are_refused(tmp_path: Path, net: str, modules: str, key: str, bad: float,
                                              why: str) -> None:
    """They imported silently and made black images."""
    def spoil(array):
        array = np.array(array)
        array.flat[1] = bad
        return array

    message, _ = _refused(_changed_ada(tmp_path, [(net, modules, key, spoil)]))
    assert re.search(why + r" of \d+; a network with them makes blank images, so ganflow refused it", message), message


def _text(value: str) -> bytes:
    return b"X" + len(value.encode()).to_bytes(4, "little") + value.encode()  # BINUNICODE


def _deep_tf1(depth: int) -> bytes:
    """A TF1 (G, D, Gs) whose Gs holds, beside its mapping and synthesis networks, a chain of
    networks `depth` deep, assembled as bytes (a recursive pickler could not write it)."""
    def network(state: bytes) -> bytes:  # the class (BINGET 0), NEWOBJ, its state dict, BUILD
        return b"h\x00)\x81}(" + state + b"ub"

    link = b"h\x00)\x81}(" + _text("components") + b"}(" + _text("x")
    chain = link * depth + network(b"") + b"uub" * depth
    components = (_text("mapping") + network(_text("build_func_name") + _text("G_mapping"))
                  + _text("synthesis") + network(_text("build_func_name") + _text("G_synthesis_stylegan2"))
                  + _text("x") + chain)
    gs = network(_text("build_func_name") + _text("G_main") + _text("components") + b"}(" + components + b"u")
    return b"\x80\x03cdnnlib.tflib.network\nNetwork\nq\x00" + gs + b"q\x01h\x01h\x01h\x01\x87."


def test_deep_nesting_is_one_sentence(tmp_path: Path) -> None:
    message, _ = _refused(_write(tmp_path, _deep_tf1(5000)))
    assert "is nested too deeply: its TensorFlow networks hold networks more than 4 levels down" in message


@pytest.mark.parametrize("error, why", [
    (MemoryError(), r"would need more memory than this machine could give to import it"),
    (RecursionError("maximum recursion depth exceeded"), r"is nested too deeply to be a network file"),
    (EOFError(), r"is cut short \(it ends in the middle of its data\)"),
    (ValueError(), r"cannot read \S+ as a network pickle \(ValueError\)$"),
    (ValueError("x" * _MB + "\n"), r"cannot read \S+ as a network pickle \(ValueError: x{77}\.\.\.\)$"),
])
def test_errors_while_reading_are_one_sentence(tmp_path: Path, monkeypatch, error: Exception, why: str) -> None:
    """Whatever a file makes the reader fail with is said in one short sentence: no empty
    '(MemoryError: )', no megabyte-long detail."""
    def fail(self):
        raise error
    monkeypatch.setattr(import_weights._Unpickler, "load", fail)
    message, _ = _refused(FIXTURES / "tf1-64.pkl")
    assert re.search(why, message), message


def test_running_out_of_memory_while_building_is_one_sentence(monkeypatch) -> None:
    def oom(**arch):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[512,512,3,3]")
    monkeypatch.setattr(networks, "Generator", oom)
    message, _ = _refused(FIXTURES / "ada-32.pkl")
    assert "would need more memory than this machine could give to import it" in message


@pytest.mark.parametrize("name, cut", [("ada-32.pkl", 0), ("ada-32.pkl", 1000), ("ada-32.pkl", 0.5),
                                       ("tf1-64.pkl", 0.5), ("tf1-64.pkl", -1), ("ada-32.pt", 0.5)])
def test_cut_files_are_cut_short(tmp_path: Path, name: str, cut: float) -> None:
    data = (FIXTURES / name).read_bytes()
    data = data[:cut if isinstance(cut, int) else int(len(data) * cut)]
    message, _ = _refused(_write(tmp_path, data, name))
    assert "is cut short (it ends in the middle of its data)" in message or (cut == 0 and "is empty" in message) or (
        name.endswith(".pt") and "starts like a zip file but is not a complete one" in message), message


def test_long_or_many_line_names_are_quoted_short(tmp_path: Path) -> None:
    """A 1 MiB module name, class name or option: quoted to 80 characters, on one line."""
    long = "m" * _MB
    cases = [b"\x80\x02c" + long.encode() + b"\nsystem\n.",
             _craft(_Reduce(_Global("os", "sys\ntem\r\u2028")), protocol=4)]
    with open(tmp_path / "tf.pkl", "wb") as f:
        G = _TFNetwork("G_main", {"mystery": long}, {"mapping": _TFNetwork("G_mapping", {}),
                                                     "synthesis": _TFNetwork("G_synthesis_stylegan2", {})})
        _TFPickler(f, protocol=3).dump((G, G, G))
    for i, data in enumerate(cases):
        message, _ = _refused(_write(tmp_path, data, f"{i}.pkl"))
        assert "which an import of weights never needs" in message
    assert "an option this importer does not know (mystery='mmmm" in _refused(tmp_path / "tf.pkl")[0]
    named = tmp_path / "named.pkl"
    data = import_weights.read_pickle(FIXTURES / "ada-32.pkl")
    data["G_ema"].class_name = "G" * _MB + "\n"
    with open(named, "wb") as f:
        _TorchPickler(f, protocol=4).dump(data)
    assert "holds a GGGG" in _refused(named)[0]


def test_byte_order_is_named_only_when_it_is_big(tmp_path: Path) -> None:
    message, _ = _refused(_write(tmp_path, _torch_legacy({}, {}, info=[1, 2])))
    assert "holds torch data without the system information torch.save writes first" in message
    message, _ = _refused(_write(tmp_path, _torch_legacy({}, {}, info={"little_endian": False})))
    assert "was saved on a big-endian machine" in message
    for order, why in ((b"little\n", r"records its byte order as b'little\\n', neither little nor big"),
                       (b"big", "was saved big-endian")):
        f = io.BytesIO()
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
            z.writestr("archive/byteorder", order)
        message, _ = _refused(_write(tmp_path, f.getvalue(), "order.pt"))
        assert re.search(why, message), message


# What the allow-list hands a pickle (functions, classes, markers), as the file names them.
_ALLOWED_NAMES = [("collections", "OrderedDict"), ("builtins", "set"), ("__builtin__", "frozenset"),
                  ("_codecs", "encode"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                  ("torch._tensor", "_rebuild_from_type_v2"), ("torch", "Tensor"), ("torch", "Size"),
                  ("torch", "FloatStorage"), ("torch.storage", "_load_from_bytes"),
                  ("torch_utils.persistence", "_reconstruct_persistent_obj"), ("dnnlib.util", "EasyDict"),
                  ("dnnlib.tflib.network", "Network"), ("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                  ("numpy._core.numeric", "_frombuffer")]


def _module_state() -> list:
    """Everything a pickle could have reached in the importer, as comparable values."""
    out = []
    for value in vars(import_weights).values():
        if callable(value) or isinstance(value, import_weights._Marker):
            out.append((value, dict(getattr(value, "__dict__", {})), getattr(value, "__defaults__", None)))
    return out


@pytest.mark.parametrize("module, name", _ALLOWED_NAMES)
@pytest.mark.parametrize("state", [{"owned": True}, (None, {"owned": True, "__doc__": "owned"})])
def test_a_pickle_cannot_change_what_it_is_given(tmp_path: Path, module: str, name: str, state) -> None:
    """BUILD on an allowed function, class or marker (its __dict__ or attributes, defaults
    included) is refused; nothing shared between loads changes."""
    before = _module_state()
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + pickle.dumps(state, protocol=2)[2:-1] + b"b."
    message, _ = _refused(_write(tmp_path, data), import_weights.read_pickle)
    assert f"sets the state of {module}.{name}, which a network pickle never does" in message
    after = _module_state()
    assert [(v, d) for v, d, _ in before] == [(v, d) for v, d, _ in after] and not any(
        getattr(v, "owned", False) for v, _, _ in after)
    assert [x for _, _, x in before] == [x for _, _, x in after]


def test_each_load_gets_its_own_stand_ins(tmp_path: Path) -> None:
    """The same name, loaded twice, is two objects: nothing one file does to what it is given
    can reach the next."""
    for module, name in [("numpy", "ndarray"), ("torch._utils", "_rebuild_tensor_v2"), ("torch", "Tensor")]:
        path = _write(tmp_path, b"\x80\x02c" + f"{module}\n{name}\n".encode() + b".")
        assert import_weights.read_pickle(path) is not import_weights.read_pickle(path)


def _deep_tuple(depth: int) -> bytes:
    return b")" + b"\x85" * depth  # EMPTY_TUPLE, then TUPLE1 `depth` times


_PADDING = b"\x8e" + (12 * _MB).to_bytes(8, "little") + bytes(12 * _MB) + b"0"  # 12 MiB of bytes, popped


def test_hostile_files_end_in_one_sentence_in_a_fresh_process(tmp_path: Path) -> None:
    """Files that crashed the interpreter, each imported in one separate process: a tensor
    reading far past its storage (SIGSEGV), and a dict key or set member nested 250000 deep,
    which hashing follows down the C stack (SIGSEGV from about 150000 here). Padding raises
    the file's allowance so that the key check, not the allowance, refuses them; unpadded,
    the allowance does."""
    far = _rebuilt(_rebuilt(_storage("0", 1), 0, (2 ** 40,), (0,)), 0, (2 ** 20,), (2 ** 19,))
    deep, member = _deep_tuple(250_000), "as a dict key or set member"
    files = {
        "far.pt": (_torch_zip({"G_ema": far, "D": far}, {"0": _floats(1)}), "repeats one stored number"),
        "key.pkl": (b"\x80\x04" + _PADDING + b"}(" + deep + b"K\x01u.", member),
        "member.pkl": (b"\x80\x04" + _PADDING + b"\x8f(" + deep + b"\x90.", member),
        "frozen.pkl": (b"\x80\x04" + _PADDING + b"(" + deep + b"\x91.", member),
        "dict.pkl": (b"\x80\x04" + _PADDING + b"(" + deep + b"K\x01d.", member),
        "ordered.pkl": (b"\x80\x04" + _PADDING + b"ccollections\nOrderedDict\n(" + deep + b"K\x01\x86l\x85R.",
                        member),
        "set.pkl": (b"\x80\x04" + _PADDING + b"c__builtin__\nset\n(" + deep + b"l\x85R.", member),
        "unpadded.pkl": (b"\x80\x02}(" + _deep_tuple(10 ** 6) + b"K\x01u.", "would unpack into more than"),
    }
    for name, (data, _) in files.items():
        _write(tmp_path, data, name)
    script = ("import json, sys\nfrom ganflow import import_weights\nfrom ganflow.runlog import SetupError\n"
              "for path in sys.argv[1:]:\n"
              "    try:\n        import_weights.import_networks(path)\n        out = 'imported'\n"
              "    except SetupError as e:\n        out = str(e)\n"
              "    except BaseException as e:\n        out = 'escaped ' + type(e).__name__\n"
              "    print(json.dumps(out), flush=True)\n")
    run = subprocess.run([sys.executable, "-c", script, *(str(tmp_path / n) for n in files)], capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).parents[1])
    lines = run.stdout.splitlines()
    assert run.returncode == 0 and len(lines) == len(files), (run.returncode, lines, run.stderr[-2000:])
    for (name, (_, why)), line in zip(files.items(), lines):
        message = json.loads(line)
        assert why in message, (name, message)
        _one_sentence(message, tmp_path / name)
