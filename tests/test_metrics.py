import numpy as np
import pytest
from sklearn import metrics as skm

from keras_lstm.metrics import (
    classification_metrics,
    metric_notes,
    naive_forecast,
    regression_metrics,
    seasonal_naive_scale,
    summarize,
)


def test_regression_metrics_equal_independent_computations():
    rng = np.random.default_rng(0)
    true = rng.normal(10, 2, (50, 3, 2))
    pred = true + rng.normal(0, 0.5, true.shape)
    scale = np.array([1.5, 2.0])
    m = regression_metrics(true, pred, ("a", "b"), scale)
    for i, name in enumerate("ab"):
        t, p = true[..., i].ravel(), pred[..., i].ravel()
        got = m["per_target"][name]
        assert got["rmse"] == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
        assert got["mae"] == pytest.approx(np.mean(np.abs(t - p)))
        assert got["mape"] == pytest.approx(100 * np.mean(np.abs((t - p) / t)))
        assert got["smape"] == pytest.approx(
            100 * np.mean(2 * np.abs(p - t) / (np.abs(t) + np.abs(p)))
        )
        assert got["mase"] == pytest.approx(np.mean(np.abs(t - p)) / scale[i])
        assert got["r2"] == pytest.approx(1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2))
    assert m["rmse"] == pytest.approx(np.mean([m["per_target"][n]["rmse"] for n in "ab"]))


def test_seasonal_naive_scale():
    history = np.array([[1.0], [3.0], [2.0], [6.0]])
    assert seasonal_naive_scale(history, 1)[0] == pytest.approx((2 + 1 + 4) / 3)
    assert seasonal_naive_scale(history, 2)[0] == pytest.approx((1 + 3) / 2)


def test_naive_forecasts_use_only_the_past():
    y = np.arange(100.0)[:, None]
    naive = naive_forecast(y, np.array([10, 20]), horizon=3, season=1)
    np.testing.assert_array_equal(naive[:, :, 0], [[9, 9, 9], [19, 19, 19]])
    seasonal = naive_forecast(y, np.array([10]), horizon=5, season=2)
    # steps 10..14 from one season earlier, never from row >= 10
    np.testing.assert_array_equal(seasonal[0, :, 0], [8, 9, 8, 9, 8])
    # without a full season of history: the last value, never a wrapped-around future row
    early = naive_forecast(y, np.array([3]), horizon=2, season=7)
    np.testing.assert_array_equal(early[0, :, 0], [2, 2])


def test_classification_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, probs.argmax(1)))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(labels, probs.argmax(1), average="macro"))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(labels, probs))


def test_binary_auc_uses_positive_class():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    assert classification_metrics(labels, probs)["auc"] == 1.0


def test_summarize_mean_and_std():
    mean, std = summarize([{"rmse": 1.0, "x": None}, {"rmse": 3.0, "x": None}])
    assert mean == {"rmse": 2.0, "x": None} and std["rmse"] == 1.0


def test_baseline_comparison_picks_the_best_baseline_and_says_who_wins():
    from keras_lstm.metrics import baseline_comparison

    baselines = {"naive": {"mase": 1.2, "rmse": 3.0}, "seasonal_naive": {"mase": 0.9, "rmse": 4}}
    losing = baseline_comparison({"mase": 1.0, "rmse": 2.0}, baselines)
    assert losing["best_baseline"] == "seasonal_naive" and losing["beats"] is False
    winning = baseline_comparison({"mase": 0.5}, baselines)
    assert winning["beats"] is True and winning["baseline"] == 0.9
    # without MASE, RMSE decides; classification: the accuracy, which a nearest-neighbour
    # baseline has (its log loss is None) and which it wins here against the majority class
    assert baseline_comparison({"rmse": 2.5}, baselines)["best_baseline"] == "naive"
    both = {
        "majority": {"log_loss": 0.69, "accuracy": 0.5},
        "1nn_euclidean": {"log_loss": None, "accuracy": 0.7},
    }
    verdict = baseline_comparison({"log_loss": 0.6, "accuracy": 0.6}, both)
    assert verdict["metric"] == "accuracy" and verdict["best_baseline"] == "1nn_euclidean"
    assert verdict["beats"] is False
    # a tie is no win: a model that only ever says the majority class does not beat it
    tie = baseline_comparison({"log_loss": 0.6, "accuracy": 0.5}, {"majority": both["majority"]})
    assert tie["beats"] is False
    # without accuracy the log loss decides
    assert baseline_comparison({"log_loss": 0.6}, both)["beats"] is True


def test_nearest_neighbour_labels_match_a_brute_force_search():
    from keras_lstm.metrics import nearest_neighbour_labels

    rng = np.random.default_rng(0)
    train = rng.normal(size=(30, 12, 2))
    train[:10, 8:] = 0.0  # sequences padded with zeros after their end
    queries = rng.normal(size=(17, 9, 2))  # shorter: padded to the training length
    labels = rng.integers(0, 4, size=30)
    padded = np.concatenate([queries, np.zeros((17, 3, 2))], axis=1)
    expected = [labels[int(np.argmin([np.sum((q - t) ** 2) for t in train]))] for q in padded]
    got = nearest_neighbour_labels(train, labels, queries, chunk=5)
    assert got.tolist() == expected


def test_verdict_line_says_plainly_when_the_model_loses():
    from keras_lstm.pipeline import verdict_line

    comparison = {
        "cv": {
            "metric": "mase",
            "model": 0.8,
            "best_baseline": "naive",
            "baseline": 0.9,
            "beats": True,
        },
        "test": {
            "metric": "mase",
            "model": 1.1,
            "best_baseline": "naive",
            "baseline": 0.9,
            "beats": False,
        },
    }
    line = verdict_line({"baseline_comparison": comparison})
    assert line.startswith("WARNING") and "test" in line and "LOSES TO naive" in line
    comparison["test"].update(model=0.7, beats=True)
    assert verdict_line({"baseline_comparison": comparison}).startswith("The model beats")


@pytest.mark.parametrize(
    "true",
    [
        np.array([-1.5, -0.5, 0.5, 2.0]),  # crosses 0 (a temperature in winter)
        np.array([0.0, 1.0, 2.0, 3.0]),  # touches 0
    ],
)
def test_mape_is_missing_where_the_truth_is_zero_or_changes_sign_and_smape_stays(true):
    pred = true + 0.25
    m = regression_metrics(true.reshape(-1, 1, 1), pred.reshape(-1, 1, 1), ("y",), np.ones(1))
    assert m["mape"] is None and m["per_target"]["y"]["mape"] is None
    assert m["smape"] == pytest.approx(
        100 * np.mean(2 * np.abs(pred - true) / (np.abs(true) + np.abs(pred)))
    )


def test_metric_notes_say_why_mase_and_mape_are_missing():
    folds = [{"mase": None, "mape": 3.0}, {"mase": 0.8, "mape": None}]
    notes = metric_notes(folds, {"mase": 0.7, "mape": 2.0}, 365, [200, 400])
    assert len(notes) == 2
    assert "fold 1: its 200 training rows are not more than data.season = 365" in notes[0]
    assert "fold 2" not in notes[0]
    assert notes[1].startswith("MAPE is missing for fold 2:") and "sMAPE" in notes[1]
    assert metric_notes(folds[1:2] * 0, {"mase": 1.0, "mape": 1.0}, 1, []) == []
