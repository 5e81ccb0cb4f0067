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
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ganflow import import_weights, networks, rank, weights
from ganflow.runlog import SetupError

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
# file -> its reference outputs: stylegan2-ada-pytorch snapshot (32px, conv_clamp 0.5) and the
# same networks through torch.save's zip format, stylegan3's StyleGAN2 (16px, conv_clamp 256),
# NVlabs/stylegan2 TensorFlow 1 (64px)
CASES = {"ada-32.pkl": "ada-32.npz", "ada-32.pt": "ada-32.npz", "sg3-16.pkl": "sg3-16.npz",
         "tf1-64.pkl": "tf1-64.npz"}
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
    _close(G.mapping(z), ref["ws"], "ws")
    _close(G(z, noise_mode="const"), ref["img_psi1"], "images, psi 1")
    _close(G(z2, psi=0.7, noise_mode="const"), ref["img_psi07"], "images, psi 0.7")
    _close(G(z2, psi=0.5, cutoff=4, noise_mode="const"), ref["img_psi05_cut4"], "images, psi 0.5, cutoff 4")
    noise = [ref[f"noise{i}"][None, :, :, None] for i in range(len(G.synthesis.convs))]
    _close(G.synthesis(G.mapping(z2), noise=noise), ref["img_noise"], "images, given noise")
    # The comparison can fail: the images are far from trivial, and the given noise matters.
    assert float(np.abs(ref["img_psi1"]).max()) > 1.0
    assert float(np.abs(ref["img_noise"] - ref["img_psi1"][:2]).max()) > 10 * TOLERANCE


@pytest.mark.parametrize("name", CASES)
def test_discriminator_logits_equal_upstream(imported: dict, name: str) -> None:
    _, D, _ = imported[name]
    ref = np.load(FIXTURES / CASES[name])
    images = ref["d_pixels"].astype(np.float32) / 127.5 - 1.0
    assert D.architecture["mbstd_grouping"] == "strided" and D.mbstd_group == 4
    _close(D(images), ref["d_logits"], "D logits, batch of 8")
    _close(D(ref["img_psi1"]), ref["d_logits_fakes"], "D logits of the generated images")
    # Batches of 8 are two stddev groups: ganflow's own consecutive groups would differ.
    consecutive = networks.Discriminator(**{**D.architecture, "mbstd_grouping": "consecutive"})
    for mine, theirs in zip(consecutive.weights, D.weights):
        mine.assign(theirs)
    assert float(np.abs(consecutive(images).numpy() - ref["d_logits"]).max()) > 10 * TOLERANCE


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


def test_cli_refusal_is_one_sentence(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        import_weights.main([str(FIXTURES / "ada-cond-8.pkl"), str(tmp_path / "out")])
    assert "conditional model" in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, why", [
    ("ada-cond-8.pkl", r"is a conditional model \(c_dim 4"),
    ("sg3-t-16.pkl", r"is a StyleGAN3 \(alias-free, -T or -R\) generator"),
])
def test_unsupported_models_are_refused(name: str, why: str) -> None:
    with pytest.raises(SetupError, match=why):
        import_weights.import_networks(FIXTURES / name)


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
    data = import_weights.read_pickle(FIXTURES / "ada-32.pkl")
    record = data[net]
    for name in filter(None, path.split(".")):
        record = record.child(name)
    target = record.state
    *parents, last = key.split(".")
    for name in parents:
        target = target[name]
    target[last] = value
    out = tmp_path / "changed.pkl"
    with open(out, "wb") as f:
        _TorchPickler(f, protocol=4).dump(data)
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
    round_1 = out[out.index("rule train:"):].split("\n\n")[0]
    assert "wildcards: r=1" in round_1 and "input: results/demo/round-1/dataset/dataset.json, " \
        "results/demo/imported/export.json" in round_1, round_1


@pytest.mark.slow
def test_the_workflow_makes_samples_figures_and_videos_from_a_released_model(tmp_path, cascade_path):
    """`generator: model.pkl` and plain `snakemake`: the model is imported, and samples,
    figures and walk videos come from it; no data stage and no training runs."""
    from PIL import Image

    from ganflow import samples
    from workflow import jobs_planned, snakemake, tiny_config

    tiny_config(tmp_path, cascade_path, generator=str(FIXTURES / "ada-32.pkl"),
                **{"edit.methods": ["sefa"], "edit.k": 2, "edit.apply": ["sefa-1/-2/seed4"]})
    planned = jobs_planned(tmp_path)
    assert {"import_weights", "samples", "figures", "videos_walk", "edit_sefa", "edit"} <= planned.keys()
    assert not {"ids", "faces", "dataset", "train", "demo"} & planned.keys()
    snakemake(tmp_path)
    res = tmp_path / "results/demo"
    G, _, _ = import_weights.import_networks(FIXTURES / "ada-32.pkl")
    ws = samples.map_latents(G, samples.latents([3], G.z_dim), 0.7)
    expected = samples.render(G, ws, noise_mode="const")[0]
    assert np.array_equal(np.asarray(Image.open(res / "samples/seeds/seed000003.png")), expected)
    assert all((res / f"figures/{f}.png").is_file() for f in ("truncation", "style_mixing"))
    assert (res / "videos/interpolation-grid.mp4").stat().st_size > 0
    assert all((res / f"edits/sefa.{ext}").stat().st_size > 0 for ext in ("png", "mp4"))
    edited = np.asarray(Image.open(res / "edits/apply/sefa-1/-2/seed4.png"))
    unedited = samples.render(G, samples.map_latents(G, samples.latents([4], G.z_dim), 0.7), noise_mode="const")[0]
    assert edited.shape == unedited.shape and np.abs(edited.astype(int) - unedited).mean() > 1  # moved
    assert jobs_planned(tmp_path) == {}
