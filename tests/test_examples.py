"""Every example runs on a reduced budget (one or two epochs) and returns sensible results."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["sine_forecaster", "multifeature_forecaster", "multistep_load"])
def test_forecasting_examples(name, tmp_path):
    metrics = _load(name).main(["--epochs", "1", "--out", str(tmp_path)])
    assert metrics["test"]["rmse"] > 0
    assert {"naive", "seasonal_naive"} == set(metrics["baselines"])
    assert (tmp_path / "bundle" / "model.keras").is_file()


def test_many_meters_example_reports_every_meter(tmp_path):
    metrics = _load("many_meters").main(["--epochs", "1", "--out", str(tmp_path)])
    assert len(metrics["test"]["per_series"]) == 20
    assert metrics["test"]["mase"] > 0


def test_multistep_example_predicts_a_day_ahead(tmp_path):
    module = _load("multistep_load")
    frame = module.make_data(days=10)
    assert {"hour_sin", "hour_cos", "week_sin", "week_cos"} <= set(frame.columns)
    assert len(frame) == 240


@pytest.mark.parametrize("name", ["sensor_classifier", "text_classifier"])
def test_classification_examples(name, tmp_path):
    metrics = _load(name).main(["--epochs", "1", "--out", str(tmp_path)])
    assert 0 <= metrics["test"]["accuracy"] <= 1
    assert "majority" in metrics["baselines"]


def test_export_to_device_example(tmp_path):
    result = _load("export_to_device").main(["--epochs", "2", "--out", str(tmp_path)])
    assert result["report"]["builtin_only"] is True
    assert result["report"]["mode"] == "int8-full"
    # the hand-written device loop agrees with Keras to a fraction of a degree
    assert result["max_abs_gap_celsius"] < 1.5
