"""Whole-sequence tasks: labelled recordings, NumPy arrays, and texts."""

import numpy as np
import pandas as pd
import pytest

from keras_lstm.bundle import Bundle
from keras_lstm.config import DataConfig, ModelConfig, TrainingConfig, load_config
from keras_lstm.data.sequences import (
    load_sequences,
    pad,
    sequences_from_arrays,
)
from keras_lstm.data.splits import plan_sample_splits
from keras_lstm.errors import ConfigError, DataError
from keras_lstm.factory import build_model
from keras_lstm.training import fit, prepare
from keras_lstm.training.prepare import sequences_alike


def _recordings(n=36, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        cls = i % 3
        length = int(rng.integers(5, 12))
        t = np.arange(length)
        x = np.sin(t * (cls + 1) / 2) + 0.05 * rng.standard_normal(length)
        for k in range(length):
            rows.append({"rec": f"r{i}", "x": x[k], "z": float(cls), "g": "abc"[cls]})
    return pd.DataFrame(rows)


def test_long_table_becomes_one_sequence_per_series():
    frame = _recordings()
    table = load_sequences(frame, DataConfig(series_id="rec", label="g"))
    assert len(table.sequences) == 36 and table.ids[:2] == ("r0", "r1")
    assert table.feature_names == ("x", "z")
    first = frame[frame.rec == "r0"][["x", "z"]].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(table.sequences[0], first)
    assert table.labels[:3].tolist() == ["a", "b", "c"]


def test_label_must_be_constant_within_a_series():
    frame = _recordings()
    frame.loc[1, "g"] = "b"
    with pytest.raises(DataError, match="'g' changes within series 'r0'"):
        load_sequences(frame, DataConfig(series_id="rec", label="g"))


def test_stratified_splits_keep_class_ratios():
    labels = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 15)
    plan = plan_sample_splits(
        labels, DataConfig(test_size=0.2), TrainingConfig(cv_splits=3), 0, stratify=True
    )
    overall = pd.Series(labels).value_counts(normalize=True)
    for part in [plan.final.validation, *[f.validation for f in plan.folds]]:
        share = pd.Series(labels[part]).value_counts(normalize=True)
        np.testing.assert_allclose(share[overall.index], overall, atol=0.05)
    train = set(plan.final.train)
    assert train.isdisjoint(plan.final.validation)
    for fold in plan.folds:
        assert set(fold.train) | set(fold.validation) == train
        assert set(fold.train).isdisjoint(fold.validation)


def test_too_few_per_class_is_a_clear_error():
    with pytest.raises(DataError, match="Class 'b' has 2 training sequences"):
        plan_sample_splits(
            np.array(["a"] * 10 + ["b"] * 2), DataConfig(), TrainingConfig(cv_splits=3), 0, True
        )


def test_padded_batch_predicts_like_single_sequences():
    model = build_model(
        ModelConfig(units=(6, 4), bidirectional=True),
        (None, 2),
        3,
        "classification",
        mask_value=0.0,
    )
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 2)).astype(np.float32) + 3 for n in (4, 9, 6)]
    batch = model.predict(pad(sequences), verbose=0)
    for i, seq in enumerate(sequences):
        alone = model.predict(seq[None], verbose=0)
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)


def test_arrays_api_and_bad_arrays():
    x = np.random.default_rng(0).standard_normal((30, 7, 2))
    y = np.array([0, 1] * 15)
    config = load_config(
        {"task": "classification", "data": {"test_size": 0.2}, "training": {"cv_splits": 2}}
    )
    prepared = prepare(config, (x, y))
    assert prepared.kind == "sequences" and prepared.input_shape == (None, 2)
    with pytest.raises(DataError, match="shape"):
        sequences_from_arrays(np.zeros((3, 4)), [0, 1, 0])
    with pytest.raises(DataError, match="dtype"):
        sequences_from_arrays([np.array([["a"]])], [0])
    with pytest.raises(DataError, match="one label per sequence"):
        sequences_from_arrays(np.zeros((3, 4, 1)), [0, 1])


def test_label_without_series_id_is_a_config_error():
    config = load_config({"data": {"label": "g"}})
    with pytest.raises(ConfigError, match="data.series_id"):
        prepare(config, _recordings())


def test_sequence_classifier_end_to_end(tmp_path):
    frame = _recordings()
    config = {
        "task": "classification",
        "seed": 2,
        "data": {"series_id": "rec", "label": "g", "test_size": 0.25},
        "model": {"units": [8], "conv_filters": [4, 4], "conv_pool": 2},
        "training": {"epochs": 2, "cv_splits": 2, "class_weight": "balanced"},
    }
    bundle = fit(config, frame, verbose=0)
    assert set(bundle.metrics["test"]) == {"accuracy", "f1_macro", "auc", "log_loss"}
    assert "majority" in bundle.metrics["baselines"]
    directory = bundle.save(tmp_path / "bundle")
    assert (directory / "confusion.png").is_file()
    loaded = Bundle.load(directory)
    some = frame[frame.rec.isin(["r3", "r4"])].drop(columns="g")
    out = loaded.predict(some)
    assert list(out.index) == ["r3", "r4"]
    pd.testing.assert_frame_equal(out, bundle.predict(some))
    # the same sequence given as an array predicts the same
    seq = some[some.rec == "r3"][["x", "z"]].to_numpy()
    np.testing.assert_allclose(
        loaded.predict([seq]).iloc[0, 1:].to_numpy(dtype=float),
        out.iloc[0, 1:].to_numpy(dtype=float),
        rtol=1e-5,
    )
    # the exported classifier agrees with Keras on whole sequences given as a long table
    from tflite_export import LitePredictor, export

    report = export(bundle, "float32", tmp_path / "seq.tflite")
    assert report["builtin_only"] and report["max_abs_error"] < 1e-5
    lite = LitePredictor(tmp_path / "seq.tflite").predict(some)  # the frame Bundle.predict gives
    pd.testing.assert_index_equal(lite.index, out.index)
    pd.testing.assert_index_equal(lite.columns, out.columns)
    np.testing.assert_allclose(
        lite.iloc[:, 1:].to_numpy(dtype=float), out.iloc[:, 1:].to_numpy(dtype=float), atol=1e-5
    )


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(units=(6, 4)),
        ModelConfig(units=(5, 4), bidirectional=True),
        ModelConfig(cell="gru", units=(5,), bidirectional=True),
    ],
    ids=["lstm-stack", "bidirectional-stack", "bidirectional-gru"],
)
def test_masked_sequence_models_export_with_exact_parity(config, tmp_path):
    from tflite_export import export

    model = build_model(config, (None, 2), 3, "classification", mask_value=0.0)
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 2)).astype(np.float32) + 1 for n in (3, 9, 6, 12)]
    report = export(model, "float32", tmp_path / "m.tflite", pad(sequences, 12), lookback=12)
    assert report["builtin_only"]
    assert report["max_abs_error"] < 1e-5  # padded steps are skipped exactly as Masking does
    if config.cell == "lstm":
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in report["ops"]


def test_text_classifier_round_trips(tmp_path):
    texts = ["good great fine day", "bad awful poor day", "great good", "poor bad"] * 12
    frame = pd.DataFrame({"text": texts, "label": ["pos", "neg"] * 24})
    config = {
        "task": "classification",
        "seed": 1,
        "data": {"features": ["text"], "targets": ["label"], "lookback": 6},
        "model": {"units": [8], "bidirectional": True, "embedding": {"vocab_size": 30, "dim": 4}},
        "training": {"epochs": 2, "cv_splits": 2},
    }
    bundle = fit(config, frame, verbose=0)
    vocabulary = bundle.preprocessing["vocabulary"]
    assert vocabulary[:2] == ["", "[UNK]"] and "good" in vocabulary
    loaded = Bundle.load(bundle.save(tmp_path / "text"))
    new = ["good fine", "awful poor", "never seen words"]
    pd.testing.assert_frame_equal(loaded.predict(new), bundle.predict(new))
    assert list(loaded.predict(pd.DataFrame({"text": new})).columns) == [
        "label",
        "p(neg)",
        "p(pos)",
    ]


def _split_files(tmp_path, frame, train_count, seed, model, epochs):
    """`frame`'s recordings r0..r{train_count - 1} as a train file and the rest as a test
    file, and a classifier config that reads them."""
    train = frame[frame.rec.isin([f"r{i}" for i in range(train_count)])]
    test = frame[~frame.rec.isin(train.rec)]
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return {
        "task": "classification",
        "seed": seed,
        "data": {
            "path": str(tmp_path / "train.csv"),
            "test_path": str(tmp_path / "test.csv"),
            "series_id": "rec",
            "label": "g",
        },
        "model": model,
        "training": {"epochs": epochs, "cv_splits": 2},
    }


def _train_test_files(tmp_path, flip_test_label=None):
    """The recordings as a train file (r0-r23) and a test file (r24-r35)."""
    frame = _recordings()
    if flip_test_label is not None:
        frame.loc[frame.rec == flip_test_label, "g"] = "a"
    model = {"units": [6], "conv_filters": [4], "conv_pool": 2}
    return _split_files(tmp_path, frame, 24, seed=3, model=model, epochs=2)


def test_sequence_test_file_is_the_test_set(tmp_path):
    prepared = prepare(load_config(_train_test_files(tmp_path)))
    plan = prepared.plan
    test_ids = list(prepared.sample_index(plan.final.validation))
    assert test_ids == [f"r{i}" for i in range(24, 36)]
    assert list(prepared.sample_index(plan.final.train)) == [f"r{i}" for i in range(24)]
    for fold in plan.folds:  # cross-validation never sees the test file
        assert max(fold.train.max(), fold.validation.max()) < 24


@pytest.fixture(scope="module")
def train_test_fit(tmp_path_factory):
    """A classifier fitted on the train file and tested on the test file, and its folder."""
    folder = tmp_path_factory.mktemp("train_test")
    return fit(_train_test_files(folder), verbose=0), folder


def test_sequence_test_file_labels_change_nothing_in_training(tmp_path, train_test_fit):
    """Editing a label of the test file leaves the CV folds, their data and the fitted model
    exactly as they were; only the test score may move."""
    first, _ = train_test_fit
    second = fit(_train_test_files(tmp_path, flip_test_label="r25"), verbose=0)
    assert first.metrics["cv"]["mean"] == second.metrics["cv"]["mean"]
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the flipped label is scored: the log loss moves whatever class the model predicts
    assert first.metrics["test"]["log_loss"] != second.metrics["test"]["log_loss"]


def test_text_test_file_is_the_test_set(tmp_path):
    texts = ["good great fine day", "bad awful poor day", "great good", "poor bad"] * 9
    labels = ["pos", "neg"] * 18
    pd.DataFrame({"text": texts[:24], "label": labels[:24]}).to_csv(tmp_path / "tr.csv")
    pd.DataFrame({"text": texts[24:], "label": labels[24:]}).to_csv(tmp_path / "te.csv")
    config = {
        "task": "classification",
        "data": {
            "path": str(tmp_path / "tr.csv"),
            "test_path": str(tmp_path / "te.csv"),
            "features": ["text"],
            "targets": ["label"],
            "lookback": 6,
        },
        "model": {"units": [4], "embedding": {"vocab_size": 30, "dim": 4}},
        "training": {"cv_splits": 2},
    }
    plan = prepare(load_config(config)).plan
    assert plan.final.validation.tolist() == list(range(24, 36))
    assert plan.final.train.tolist() == list(range(24))
    for fold in plan.folds:
        assert max(fold.train.max(), fold.validation.max()) < 24


def test_unlabelled_recordings_predict_everywhere(tmp_path, train_test_fit):
    """New recordings carry no label column: `Bundle.predict`, `LitePredictor` and the CLI (of
    the bundle and of the `.tflite` file) all predict them, and agree."""
    import subprocess
    import sys

    from tflite_export import LitePredictor, export

    bundle, folder = train_test_fit
    bundle.save(tmp_path / "bundle")
    export(bundle, "float32", tmp_path / "seq.tflite")
    new = pd.read_csv(folder / "test.csv").drop(columns="g")
    new.to_csv(tmp_path / "new.csv", index=False)
    expected = Bundle.load(tmp_path / "bundle").predict(new)
    assert list(expected.index) == [f"r{i}" for i in range(24, 36)]
    lite = LitePredictor(tmp_path / "seq.tflite").predict_frame(new)
    assert list(lite["label"]) == list(expected["label"])
    np.testing.assert_allclose(lite.iloc[:, 1:], expected.iloc[:, 1:], atol=1e-5)
    for source in ("bundle", "seq.tflite"):
        result = subprocess.run(
            [sys.executable, "-m", "keras_lstm.cli", "predict", source, "--input", "new.csv"]
            + ["--output", f"{source}.csv"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        out = pd.read_csv(tmp_path / f"{source}.csv", index_col=0)
        assert list(out["label"]) == list(expected["label"])
        np.testing.assert_allclose(out.iloc[:, 1:], expected.iloc[:, 1:], atol=1e-5)


def test_batches_of_sequences_are_bucketed_and_cut_after_their_longest():
    """Each shuffled batch is the padded batch cut after its longest sequence (rounded up to
    `TRIM_STEP`); only padding is cut, and sequences of similar length share batches."""
    from keras_lstm.data.sequences import TRIM_STEP, SequenceData
    from keras_lstm.training.batches import WindowBatches

    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 700, 160)
    sequences = [rng.standard_normal((n, 2)).astype(np.float32) + 3 for n in lengths]
    full = pad(sequences)
    data = SequenceData(full, np.zeros(160), trim=True)
    np.testing.assert_array_equal(data.lengths, lengths)
    batches = WindowBatches(data, np.arange(160), 10, shuffle=True, seed=0)
    seen, spreads = [], []
    for index in range(len(batches)):
        rows = batches._order[index * 10 : (index + 1) * 10]
        x, _ = batches[index]
        longest = lengths[rows].max()
        assert x.shape[1] == min(-(-longest // TRIM_STEP) * TRIM_STEP, full.shape[1])
        np.testing.assert_array_equal(x, full[rows][:, : x.shape[1]])
        assert not full[rows][:, x.shape[1] :].any()  # only padding was cut
        seen.extend(rows.tolist())
        spreads.append(np.ptp(lengths[rows]))
    assert sorted(seen) == list(range(160))  # every sequence once per epoch
    random_spread = np.mean([np.ptp(rng.choice(lengths, 10)) for _ in range(200)])
    assert np.mean(spreads) < 0.5 * random_spread


def _synthetic_classes(kind: str, per_class=24, steps=20, seed=0) -> pd.DataFrame:
    """Two classes of one-channel sequences. `level`: the same noisy sine, shifted by +1 or
    -1 (only the level differs); `shape`: a sine against a square wave of the same period,
    each sequence scaled by 10**U(-2, 3) (only the shape differs, at levels spanning five
    orders of magnitude)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    rows = []
    for label in (0, 1):
        for k in range(per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * t / 8 + phase)
            if kind == "level":
                x = wave + (1.0 if label else -1.0) + 0.3 * rng.standard_normal(steps)
            else:
                x = np.sign(wave) if label else wave
                x = (x + 0.1 * rng.standard_normal(steps) + 2.0) * 10 ** rng.uniform(-2, 3)
            rows += [(f"{label}-{k}", step, v, label) for step, v in zip(t, x, strict=True)]
    frame = pd.DataFrame(rows, columns=["rec", "step", "x", "g"])
    order = rng.permutation(frame["rec"].unique())  # classes mixed over the stratified folds
    return frame.set_index("rec").loc[order].reset_index()


@pytest.mark.parametrize("kind", ["level", "shape"])
def test_default_classifier_separates_classes_by_level_and_by_shape(kind):
    """The default whole-sequence classifier (per-sequence scaler with scale and level
    channels) classifies both: a per-sequence scaler alone erases the level, a global scaler
    alone sees the shape drowned by five orders of magnitude. Both classes are balanced, so
    chance is 0.5."""
    config = {
        "task": "classification",
        "seed": 0,
        "data": {"series_id": "rec", "label": "g", "time_column": "step", "test_size": 0.25},
        "training": {"epochs": 40, "cv_splits": 2},
    }
    bundle = fit(config, _synthetic_classes(kind), verbose=0)
    assert bundle.metrics["training"]["scaler"] == "sequence"
    assert "scaler_choice" not in bundle.metrics["training"]  # auto: no cross-validated choice
    assert bundle.metrics["test"]["accuracy"] >= 0.9


def _z_normalized(sequences):
    return [(s - s.mean(axis=0)) / s.std(axis=0) for s in sequences]


def test_sequences_alike_follows_each_channels_level_and_spread():
    rng = np.random.default_rng(3)
    z = _z_normalized(list(rng.normal(size=(30, 25, 2))))
    assert sequences_alike(z)
    assert sequences_alike([s + 0.01 * rng.standard_normal(s.shape) for s in z])
    shifted = [s + [rng.choice([-1.0, 1.0]), 0.0] for s in z]  # channel 0's level differs
    assert not sequences_alike(shifted)
    spread = [s * [1.0, 10 ** rng.uniform(-1, 1)] for s in z]  # channel 1's spread differs
    assert not sequences_alike(spread)


# the synthetic classes' long table, with the cross-validated scaler choice
CV_SCALER_DATA = {
    "series_id": "rec",
    "label": "g",
    "time_column": "step",
    "test_size": 0.25,
    "scaler": "cv",
}


def test_cv_scaler_candidates_follow_the_data():
    config = {"task": "classification", "data": CV_SCALER_DATA, "training": {"cv_splits": 2}}
    frame = _synthetic_classes("level")
    assert prepare(load_config(config), frame).scaler_candidates == ("sequence", "standard")
    for name in ("standard", "auto"):  # an explicit scaler, and the default: no choice
        explicit = load_config(config).replace(**{"data.scaler": name})
        assert prepare(explicit, frame).scaler_candidates == (prepare(explicit, frame).scaler,)
    with pytest.raises(ConfigError, match="scaler: cv"):
        _ = prepare(load_config({"data": {"targets": ["x"], "scaler": "cv"}}), frame[["x"]]).scaler
    normalized = frame.copy()
    normalized["x"] = normalized.groupby("rec")["x"].transform(lambda x: (x - x.mean()) / x.std())
    assert prepare(load_config(config), normalized).scaler_candidates == ("sequence",)
    # the candidates' own backups never meet
    chosen = prepare(load_config(config).replace(**{"training.backup_dir": "b"}), frame)
    assert chosen.with_scaler("standard").config.training.backup_dir.endswith("scaler-standard")


@pytest.mark.slow  # 40 s: three cross-validations; the candidates' test stays in the suite
def test_cv_scaler_is_the_cross_validations_choice(tmp_path):
    """A candidate's recorded CV score is that of a cross-validation with the scaler set
    explicitly (same seed), the kept one ranks best by accuracy then validation loss (here
    the global scaler, not the default: ignoring the option would keep `sequence`), and the
    bundle's model is built for it (a `SequenceStandardized` layer only under `sequence`)."""
    from keras_lstm.pipeline import summary_table, train_and_save
    from keras_lstm.sequence_layers import SequenceStandardized
    from keras_lstm.training import cross_validate

    frame = _synthetic_classes("shape", per_class=12, steps=12)
    config = load_config(
        {
            "task": "classification",
            "seed": 1,
            "data": CV_SCALER_DATA,
            "model": {"units": [4], "conv_filters": [4], "conv_pool": 1},
            "training": {"epochs": 3, "cv_splits": 2},
        }
    )
    bundle = train_and_save(config, tmp_path / "run", verbose=0, data=frame)
    choice = bundle.metrics["training"]["scaler_choice"]
    scores = choice["cv"]
    assert set(scores) == {"sequence", "standard"}
    for name in scores:
        assert (tmp_path / "run" / f"scaler-{name}" / "backup" / "fold-0.json").is_file()
    # the candidate that is not the default, recomputed on its own (the other's run is the
    # default path every other sequence test takes)
    alone = cross_validate(config.replace(**{"data.scaler": "standard"}), frame, verbose=0)
    assert scores["standard"]["accuracy"] == pytest.approx(alone.mean["accuracy"])
    assert scores["standard"]["val_loss"] == pytest.approx(alone.mean_val_loss)
    best = max(scores, key=lambda n: (scores[n]["accuracy"], -scores[n]["val_loss"]))
    assert choice["chosen"] == best == bundle.metrics["training"]["scaler"]
    standardized = any(isinstance(layer, SequenceStandardized) for layer in bundle.model.layers)
    assert standardized == (best == "sequence")
    assert f"Scaler: {best}, chosen by the cross-validation" in summary_table(
        bundle.metrics, "classification"
    )


def test_sequence_classifier_is_judged_beside_a_nearest_neighbour_baseline(tmp_path):
    """The 1NN-Euclidean baseline of the test part equals scikit-learn's one-nearest-neighbour
    on the training file's sequences, standardized on its rows and zero-padded."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    rows = []
    for i in range(48):  # noisy classes, so that the nearest neighbour is often wrong
        cls, length = i % 3, int(rng.integers(4, 9))
        x = np.sin(np.arange(length) * (cls + 1) / 3) + 0.8 * rng.standard_normal(length)
        y = 10 + 5 * rng.standard_normal(length)
        rows += [
            {"rec": f"r{i}", "x": a, "y": b, "g": "abc"[cls]} for a, b in zip(x, y, strict=True)
        ]
    frame = pd.DataFrame(rows)
    model = {"units": [4], "conv_filters": [2], "conv_pool": 1}
    config = _split_files(tmp_path, frame, 30, seed=0, model=model, epochs=1)
    metrics = fit(config, verbose=0).metrics
    train = frame[frame.rec.isin([f"r{i}" for i in range(30)])]
    test = frame[~frame.rec.isin(train.rec)]
    scaler = StandardScaler().fit(train[["x", "y"]])

    def flat(part):
        groups = [g for _, g in part.groupby("rec", sort=False)]
        padded = pad([scaler.transform(g[["x", "y"]]) for g in groups], 8)
        return padded.reshape(len(groups), -1), [g.g.iloc[0] for g in groups]

    expected = KNeighborsClassifier(n_neighbors=1).fit(*flat(train)).score(*flat(test))
    baseline = metrics["baselines"]["1nn_euclidean"]
    assert 0.2 < expected < 0.95  # an informative check: neither hopeless nor perfect
    assert baseline["test"]["accuracy"] == pytest.approx(expected)
    assert baseline["test"]["log_loss"] is None
    # the verdict compares accuracies with the better of the two baselines
    verdict = metrics["baseline_comparison"]["test"]
    best = max(
        ("majority", "1nn_euclidean"), key=lambda n: metrics["baselines"][n]["test"]["accuracy"]
    )
    assert verdict["metric"] == "accuracy" and verdict["best_baseline"] == best
