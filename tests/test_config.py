"""Config validation: every key known, one sentence naming a bad one, schema and code agree."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ganflow.config import ConfigError, validate
from ganflow.training import TrainConfig

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
