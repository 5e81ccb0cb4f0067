"""Config validation against config/schema.yaml, before any job runs.

A typo in a key or a value out of range should stop the run at once with one sentence
naming the key, not fail an hour later inside a training job.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


class ConfigError(ValueError):
    """The one-sentence message names the offending key."""


# Keys renamed so that each name has one meaning: old key -> (new key, what it holds).
RENAMED = {"select": ("ids", "the ids stage's filters"), "tfrecords": ("dataset", "the dataset stage's settings")}


def _renamed(config: dict) -> None:
    """A config written before the renames gets the new name in one sentence."""
    if isinstance(config.get("dataset"), str):
        raise ConfigError(f"config key dataset now holds the dataset stage's settings (it was tfrecords:); "
                          f"name the run with run: {config['dataset']} instead")
    for old, (new, what) in RENAMED.items():
        if old in config:
            raise ConfigError(f"config key {old} is now {new} ({what}); rename it")


def validate(config: dict, schema_path: str | Path) -> dict:
    """Return a copy of `config` with schema defaults filled in, or raise ConfigError."""
    _renamed(config)
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            known = sorted(err.schema.get("properties", {}))
            unknown = sorted(set(err.instance) - set(known))
            where = f"{key}." if err.absolute_path else ""
            raise ConfigError(f"config key {where}{unknown[0]} is not known; "
                              f"allowed there: {', '.join(known)} (see {schema_path})")
        raise ConfigError(f"config key {key}: {err.message} (see {schema_path})")
    return _crop_side(_training_resolution(_with_defaults(copy.deepcopy(config), schema)))


@lru_cache(maxsize=None)
def _schema(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def defaults(section: str = "") -> dict:
    """The schema's default of every key under a dotted section ("faces", "project.encoder";
    "" for the top level): each default is written once, in config/schema.yaml, and the
    library's settings classes read it from there."""
    node = _schema(SCHEMA)
    for key in filter(None, section.split(".")):
        node = node["properties"][key]
    return {k: v["default"] for k, v in node.get("properties", {}).items() if "default" in v}


def _crop_side(config: dict) -> dict:
    """Crops stored smaller than the final images would be enlarged for nothing: refuse it."""
    side, images = config["faces"]["max_crop_side"], config["images"]["resolution"]
    if side is not None and side < images:
        raise ConfigError(f"config key faces.max_crop_side: {side} is smaller than images.resolution {images}; "
                          f"raise it (or set null to store crops at full size)")
    return config


def _training_resolution(config: dict) -> dict:
    """Default train.resolution to the images' (a power of two at most), and refuse a model
    larger than its data now, not after every data stage has run."""
    images = config["images"]["resolution"]
    train = config.setdefault("train", {})
    train.setdefault("resolution", 1 << (images.bit_length() - 1))
    if train["resolution"] > images:
        raise ConfigError(f"config key train.resolution: {train['resolution']} is larger than "
                          f"images.resolution {images}; lower it or raise images.resolution")
    return config


def _with_defaults(value, schema: dict):
    """Fill defaults of object properties recursively (jsonschema validates, it doesn't fill)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _with_defaults(value[name], sub)
    return value
