"""Config validation: every key known, one sentence naming a bad one, schema and code agree."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from ganflow import config
from ganflow.config import ConfigError, validate
from ganflow.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"


def _demo() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_demo_config_is_valid_and_defaults_fill_in():
    cfg = validate(_demo(), SCHEMA)
    assert cfg["faces"]["min_size"] == 50 and cfg["videos"]["progress"]["crf"] == 33


@pytest.mark.parametrize("section, key, value, message", [
    ("faces", "min_sise", 40, "config key faces.min_sise is not known"),
    ("faces", "min_size", 0, "config key faces.min_size: 0 is less than the minimum of 1"),
    ("images", "format", "gif", "config key images.format: 'gif' is not one of"),
    ("train", "totl_kimg", 3, "config key train.totl_kimg is not known"),
    ("rank", "drop_lowest", 1.5, "config key rank.drop_lowest"),
])
def test_bad_values_name_their_key(section, key, value, message):
    cfg = _demo()
    cfg.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        validate(cfg, SCHEMA)


def test_train_schema_lists_exactly_the_trainconfig_fields():
    schema = yaml.safe_load(SCHEMA.read_text())
    keys = set(schema["properties"]["train"]["properties"]) - {"init_from"}
    assert keys == {f.name for f in dataclasses.fields(TrainConfig)}
    TrainConfig.from_dict(_demo()["train"])  # the demo's values build a model config


@pytest.mark.parametrize("resolution, message", [
    (48, "config key train.resolution: 48 is not one of"),
    (4, "config key train.resolution: 4 is not one of"),
    (128, "config key train.resolution: 128 is larger than images.resolution 64"),
])
def test_training_resolution_is_checked_before_any_job(resolution, message):
    cfg = _demo()
    cfg["train"]["resolution"] = resolution
    with pytest.raises(ConfigError, match=message):
        validate(cfg, SCHEMA)


def test_crops_may_not_be_stored_smaller_than_the_images():
    cfg = _demo()
    cfg["images"]["resolution"], cfg["faces"]["max_crop_side"] = 512, 256
    with pytest.raises(ConfigError, match="faces.max_crop_side: 256 is smaller than images.resolution 512"):
        validate(cfg, SCHEMA)
    cfg["faces"]["max_crop_side"] = None
    assert validate(cfg, SCHEMA)["faces"]["max_crop_side"] is None


@pytest.mark.parametrize("images, expected", [(64, 64), (96, 64), (512, 512)])
def test_training_resolution_defaults_to_the_images(images, expected):
    cfg = _demo()
    del cfg["train"]["resolution"]
    cfg["images"]["resolution"] = images
    assert validate(cfg, SCHEMA)["train"]["resolution"] == expected


def test_one_truncation_key():
    """psi is set once for samples, figures and videos; no section takes its own."""
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["psi"]["default"] == 0.7

    def psi_keys(node, path=""):
        if isinstance(node, dict):
            for key, sub in node.items():
                if "psi" in str(key) and path:
                    yield f"{path}.{key}"
                yield from psi_keys(sub, f"{path}.{key}" if path else str(key))
    assert list(psi_keys(schema["properties"])) == []
    cfg = _demo()
    cfg["samples"]["psi"] = 0.5
    with pytest.raises(ConfigError, match="samples.psi is not known"):
        validate(cfg, SCHEMA)


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../x", ""])
def test_run_name_cannot_leave_results(name):
    cfg = _demo()
    cfg["run"] = name
    with pytest.raises(ConfigError, match="config key run"):
        validate(cfg, SCHEMA)
    cfg["run"] = "my-set_2.v1"
    validate(cfg, SCHEMA)


# Which config sections configure each library module (its settings classes and constants).
CONFIGURED_BY = {
    "faces": ["faces"], "clean": ["clean"], "dedupe": ["dedupe"], "images": ["images"], "rank": ["rank"],
    "keep": ["rank"], "contact": ["rank"], "samples": ["samples", ""], "figures": ["figures", ""],
    "videos": ["videos", "videos.progress", "videos.interpolation", "videos.style_mixing", ""],
    "inversion": ["project"], "project": ["project", "project.video"], "encoder": ["project.encoder"],
    "tagger": ["edit.tagger"], "edit": ["edit", "edit.boundary", "edit.video", ""], "dataset": ["dataset"],
    "demo": ["demo"], "latents": [""], "explore": [""], "metrics": ["metrics"],
}


def _literal_defaults(module: str):
    """(line, name, value) of every class field, module constant and function parameter
    whose default is a literal."""
    tree = ast.parse((REPO / "ganflow" / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs += zip((a.arg for a in positional[len(positional) - len(args.defaults):]), args.defaults)
            pairs += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            pairs.append((node.target.id, node.value))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            pairs.append((node.targets[0].id, node.value))
        for name, value in pairs:
            try:
                yield node.lineno, name, ast.literal_eval(value)
            except ValueError:
                continue


def _same(value, default) -> bool:
    """Equal as settings: 24 and 24.0 alike, a tuple and a list alike, but never True and 1."""
    number = (int, float)
    if isinstance(value, (list, tuple, dict)) or isinstance(default, (list, tuple, dict)):
        seq = (list, tuple)
        return (list(value) == list(default) if isinstance(value, seq) and isinstance(default, seq)
                else value == default and bool(value))
    if isinstance(value, bool) or isinstance(default, bool) or not isinstance(value, number):
        return value is not None and type(value) is type(default) and value == default
    return isinstance(default, number) and value == default


def test_each_default_is_written_once_in_the_schema():
    """A settings field, constant or parameter that repeats a schema default as a literal would
    drift from it: the library reads config.defaults(section) instead."""
    repeats = []
    for module, sections in CONFIGURED_BY.items():
        known = {}
        for section in sections:
            for key, value in config.defaults(section).items():
                known.setdefault(key, []).append((section or "(top)", value))
        for line, name, value in _literal_defaults(module):
            key = name.lower().removeprefix("default_")
            for section, default in known.get(key, []):
                if _same(value, default):
                    repeats.append(f"ganflow/{module}.py:{line} {name} = {value!r} repeats {section}.{key}")
    assert not repeats, repeats


def test_the_settings_classes_read_the_schema():
    from ganflow import clean, encoder, faces, inversion, tagger
    for cls, section in [(clean.CleanParams, "clean"), (faces.FaceParams, "faces"), (inversion.Settings, "project"),
                         (encoder.EncoderSettings, "project.encoder"), (tagger.TaggerSettings, "edit.tagger")]:
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        assert fields == {k: v for k, v in config.defaults(section).items() if k in fields}, cls
        assert fields.keys() <= config.defaults(section).keys(), (cls, fields.keys() - config.defaults(section).keys())


@pytest.mark.parametrize("old, new", [({"select": {}}, "ids"), ({"tfrecords": {}}, "dataset"),
                                      ({"dataset": "mine"}, "run: mine")])
def test_a_renamed_key_names_its_new_name(old, new):
    cfg = {k: v for k, v in _demo().items() if k not in ("ids", "dataset")} | old
    with pytest.raises(ConfigError, match=f"config key .* {new}"):
        validate(cfg, SCHEMA)
