import json

import pytest
import yaml

from keras_lstm.config import (
    Config,
    DataConfig,
    ModelConfig,
    TrainingConfig,
    load_config,
)
from keras_lstm.errors import ConfigError, KerasLSTMError


def test_defaults_match_design():
    config = load_config()
    assert config.task == "regression"
    assert config.seed == 42
    assert config.data.lookback == 24 and config.data.horizon == 1
    assert config.data.scaler == "auto" and config.data.test_size == 0.2
    assert config.model.units == (64, 32) and config.model.cell == "lstm"
    assert config.model.dropout == 0.2 and config.model.l2 == 1e-4
    assert config.model.linear_path is True and config.model.seasonal_base is False
    assert config.training.auto_budget is True
    assert config.training.cv_splits == 5 and config.training.clipnorm == 1.0
    assert config.tuning.algorithm == "bayesian" and config.export.quantize == "int8"


def test_sections_are_immutable():
    config = load_config()
    with pytest.raises(AttributeError):
        config.model.units = (3,)


def test_yaml_round_trip(tmp_path):
    raw = {
        "task": "regression",
        "seed": 7,
        "data": {"path": "load.csv", "targets": ["load"], "features": ["load", "temp"]},
        "model": {"units": [16, 8, 4], "bidirectional": True, "dense_units": [8]},
        "training": {"epochs": 3, "cv_splits": 3},
        "tuning": {"search_space": {"model.units": [[8], [16]]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    assert config.data.path == str((tmp_path / "load.csv").resolve())
    assert config.model.units == (16, 8, 4)
    saved = config.save(tmp_path / "saved" / "config.yaml")
    assert load_config(saved) == config
    assert load_config(config.to_dict()) == config


def test_json_is_accepted(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"data": {"targets": ["y"], "lookback": 5}}))
    assert load_config(path).data.lookback == 5


def test_replace_dotted_keys():
    config = load_config().replace(**{"model.units": [8], "data.lookback": 5})
    assert config.model.units == (8,) and config.data.lookback == 5
    with pytest.raises(ConfigError, match="model.unit.*Did you mean `model.units`"):
        load_config().replace(**{"model.unit": [8]})


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"modle": {}}, r"`modle`.*Did you mean `model`"),
        ({"model": {"unit": [3]}}, r"`model.unit`.*Did you mean `model.units`"),
        ({"data": {"lookbak": 3}}, r"`data.lookback`"),
        ({"training": {"epochs": "ten"}}, r"training.epochs.*integer.*'ten'"),
        ({"training": {"epochs": 0}}, r"training.epochs.*>= 1"),
        ({"data": {"lookback": -3}}, r"data.lookback.*>= 1.*-3"),
        ({"model": {"units": []}}, r"model.units.*non-empty"),
        ({"model": {"units": [0]}}, r"model.units\[0\].*>= 1"),
        ({"model": {"dropout": 1.0}}, r"model.dropout.*\[0.0, 1.0\)"),
        ({"model": {"dropout": -0.1}}, r"model.dropout"),
        ({"export": {"calibration_margin": -0.1}}, r"export.calibration_margin.*>= 0"),
        ({"model": {"cell": "lstn"}}, r"model.cell.*Did you mean 'lstm'"),
        ({"task": "forecast"}, r"`task`.*regression"),
        ({"data": {"scaler": "zscore"}}, r"data.scaler"),
        ({"data": {"test_size": 1.5}}, r"data.test_size"),
        ({"training": {"learning_rate": 0}}, r"training.learning_rate.*> 0"),
        ({"model": {"bidirectional": "yes"}}, r"model.bidirectional.*true or false"),
        ({"model": {"embedding": {"vocab": 3}}}, r"model.embedding"),
        ({"data": {"targets": ["y", "y"]}}, r"data.targets.*repeated"),
        ({"export": {"quantize": "int4"}}, r"export.quantize"),
        ({"model": "big"}, r"section `model` must be a mapping"),
        ([1, 2], r"must be a mapping"),
    ],
)
def test_bad_configs_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config(raw)


def test_errors_share_a_base_class():
    with pytest.raises(KerasLSTMError):
        load_config({"model": {"units": [0]}})


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml.*not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_sections_validate_when_built_directly():
    with pytest.raises(ConfigError, match="data.horizon"):
        DataConfig(horizon=0)
    with pytest.raises(ConfigError, match="training.cv_splits"):
        TrainingConfig(cv_splits=1)
    assert ModelConfig(units=[4, 2]).units == (4, 2)
    assert isinstance(Config(), Config)


def test_save_is_atomic(tmp_path, monkeypatch):
    config = load_config()
    target = tmp_path / "config.yaml"
    target.write_text("old: content\n")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        config.save(target)
    assert target.read_text() == "old: content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


@pytest.mark.parametrize(
    "raw, kind",
    [
        ({}, "series"),
        ({"data": {"series_id": "shop"}}, "panel"),
        ({"task": "classification", "data": {"series_id": "s", "label": "y"}}, "sequences"),
        ({"task": "classification", "model": {"embedding": {"vocab_size": 50, "dim": 8}}}, "text"),
        ({"task": "classification", "data": {"kind": "sequences"}}, "sequences"),
        ({"data": {"kind": "panel", "series_id": "shop"}}, "panel"),
    ],
)
def test_data_kind_is_read_from_the_settings_in_one_place(raw, kind):
    from keras_lstm.config import data_kind

    config = load_config(raw)
    assert data_kind(config) == kind
    assert load_config(config.to_dict()) == config  # saved and read back, the same kind


@pytest.mark.parametrize(
    "raw, needs",
    [
        ({"data": {"kind": "panel"}}, "`data.series_id`"),
        ({"data": {"kind": "series", "series_id": "shop"}}, "none of `data.series_id`"),
        ({"data": {"kind": "text"}}, "`model.embedding`"),
        ({"data": {"kind": "sequences", "series_id": "shop"}}, "`data.label`"),
        ({"data": {"kind": "tables"}}, None),
    ],
)
def test_a_declared_kind_that_contradicts_the_settings_is_refused(raw, needs):
    with pytest.raises(ConfigError, match="data.kind") as caught:
        load_config(raw)
    if needs:
        assert needs in str(caught.value)


def test_declared_sequences_get_the_classifier_defaults_and_arrays_are_sequences():
    import numpy as np

    from keras_lstm.config import SEQUENCE_CLASSIFIER_MODEL
    from keras_lstm.training import prepare

    declared = load_config({"task": "classification", "data": {"kind": "sequences"}})
    assert declared.model.units == tuple(SEQUENCE_CLASSIFIER_MODEL["units"])
    x, y = np.random.default_rng(0).standard_normal((20, 6, 2)), np.arange(20) % 2
    assert prepare(declared, (x, y)).kind == "sequences"
    # arrays are whole sequences whatever else is set, unless a kind says otherwise
    assert prepare(load_config({"task": "classification"}), (x, y)).kind == "sequences"
    panel = load_config({"data": {"kind": "panel", "series_id": "shop"}})
    with pytest.raises(ConfigError, match="`data.kind: panel` needs .* describe sequences"):
        prepare(panel, (x, y))
    table_without_ids = load_config({"task": "classification", "data": {"kind": "sequences"}})
    with pytest.raises(ConfigError, match="needs `data.series_id`"):
        prepare(table_without_ids, __import__("pandas").DataFrame({"x": [1.0, 2.0]}))
