"""Every example runs on a reduced budget (one or two epochs) and returns sensible results:
forecasts close to (or better than) the baselines the example prints, and classification
metrics that the saved bundle reproduces."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from keras_lstm.bundle import Bundle
from keras_lstm.training.prepare import prepare

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# A forecaster trained for one epoch may trail the best baseline a little, never by more.
BASELINE_SLACK = 1.25


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_baseline(metrics, key):
    return min(baseline["test"][key] for baseline in metrics["baselines"].values())


# the two larger forecasters (about 50 s each on the CI machine) run with `-m slow`; the sine
# example keeps the path covered by default
@pytest.mark.parametrize(
    "name",
    [
        "sine_forecaster",
        pytest.param("multifeature_forecaster", marks=pytest.mark.slow),
        pytest.param("multistep_load", marks=pytest.mark.slow),
    ],
)
def test_forecasting_examples(name, tmp_path):
    metrics = _load(name).main(["--epochs", "1", "--out", str(tmp_path)])
    assert {"naive", "seasonal_naive"} == set(metrics["baselines"])
    # One epoch already forecasts better than the naive forecasts on these series (test RMSE
    # 0.75-0.93 of the best baseline's); a broken model (a flat line, wrong units) is far worse.
    assert metrics["test"]["rmse"] < BASELINE_SLACK * _best_baseline(metrics, "rmse")
    assert metrics["test"]["mase"] < BASELINE_SLACK * _best_baseline(metrics, "mase")
    assert (tmp_path / "bundle" / "model.keras").is_file()


@pytest.mark.slow  # about 35 s; many series are covered by tests/test_panel.py
def test_many_meters_example_reports_every_meter(tmp_path):
    metrics = _load("many_meters").main(["--epochs", "1", "--out", str(tmp_path)])
    per_series = metrics["test"]["per_series"]
    assert len(per_series) == 20
    # After one epoch the global model is near the seasonal naive forecast (about 1.06 times its
    # RMSE) and well ahead of the naive one.
    assert metrics["test"]["rmse"] < BASELINE_SLACK * _best_baseline(metrics, "rmse")
    assert metrics["test"]["mase"] < BASELINE_SLACK * _best_baseline(metrics, "mase")
    assert metrics["test"]["rmse"] < metrics["baselines"]["naive"]["test"]["rmse"]
    # The overall RMSE pools the meters' squared errors: it lies between the meters' RMSEs.
    rmses = [values["rmse"] for values in per_series.values()]
    assert min(rmses) <= metrics["test"]["rmse"] <= max(rmses)


def test_multistep_example_predicts_a_day_ahead(tmp_path):
    module = _load("multistep_load")
    frame = module.make_data(days=10)
    # the calendar comes from `data.calendar`, not hand-made columns
    assert list(frame.columns) == ["time", "load", "temp"]
    assert len(frame) == 240


def _test_part(bundle, frame):
    """Positions (in the order `prepare` reads them) of the samples held out for the test."""
    return prepare(bundle.config, frame).plan.final.validation


def test_sensor_classifier_example(tmp_path):
    """One epoch is too little to beat the majority class (often every recording gets one
    label), so the reported accuracies are recomputed independently instead."""
    module = _load("sensor_classifier")
    metrics = module.main(["--epochs", "1", "--out", str(tmp_path)])
    bundle = Bundle.load(tmp_path / "bundle")
    frame = module.make_data()
    labels = frame.groupby("recording", sort=False)["gesture"].first()
    test = labels.index[_test_part(bundle, frame)]
    # The saved model, one held-out recording at a time, unpadded.
    predicted = bundle.predict(frame[frame["recording"].isin(test)])
    assert list(predicted.index) == list(test)
    accuracy = np.mean(predicted["label"].to_numpy() == labels.loc[test].to_numpy())
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)
    # The majority baseline: the most frequent training gesture (first in class order on ties).
    counts = labels.drop(test).value_counts().reindex(bundle.preprocessing["classes"])
    majority = np.mean(labels.loc[test].to_numpy() == counts.idxmax())
    assert metrics["baselines"]["majority"]["test"]["accuracy"] == pytest.approx(majority)


@pytest.mark.slow  # about 40 s; texts are covered by tests/test_sequences.py
def test_text_classifier_example(tmp_path):
    module = _load("text_classifier")
    metrics = module.main(["--epochs", "1", "--out", str(tmp_path)])
    baseline = metrics["baselines"]["majority"]["test"]
    # After one epoch the probabilities sit close to 0.5, so accuracy at the 0.5 threshold is
    # fragile; their ranking already separates the reviews (AUC about 0.78, the majority 0.5).
    assert metrics["test"]["auc"] > baseline["auc"] + 0.1
    # The saved bundle reproduces the reported accuracy on the held-out reviews.
    bundle = Bundle.load(tmp_path / "bundle")
    frame = module.make_data()
    held_out = frame.iloc[_test_part(bundle, frame)]
    predicted = bundle.predict(held_out)
    accuracy = np.mean(predicted["label"].to_numpy() == held_out["sentiment"].to_numpy())
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)


def test_export_to_device_example(tmp_path):
    result = _load("export_to_device").main(["--epochs", "2", "--out", str(tmp_path)])
    assert result["report"]["builtin_only"] is True
    assert result["report"]["mode"] == "int8-full"
    # the hand-written device loop agrees with Keras to a fraction of a degree
    assert result["max_abs_gap_celsius"] < 1.5
