"""Bad input at every entry point fails loudly, cleanly and with the project's own error.

Each case hands one entry point something broken (a CSV, a config, a bundle, a TFLite file, an
array) and asserts a `KerasLSTMError` subclass whose message names the culprit (the file, key,
column or row). CLI cases also assert the contract: exit code 2, one line on stderr, no
traceback, and no file left behind in the output folder.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from keras_lstm import load_config
from keras_lstm.config import DataConfig
from keras_lstm.data import load_table
from keras_lstm.data.sequences import sequences_from_arrays
from keras_lstm.errors import (
    BundleError,
    ConfigError,
    DataError,
    ExportError,
    KerasLSTMError,
    OutputError,
)

ROOT = Path(__file__).resolve().parents[1]
LOOKBACK = 4
ROWS = 40
TINY = {
    "seed": 1,
    "data": {"time_column": "t", "targets": ["y"], "lookback": LOOKBACK, "test_size": 0.2},
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 1, "cv_splits": 2, "batch_size": 16, "early_stopping_patience": 0},
}


def _frame(n=ROWS):
    """A small series: integer time `t`, target `y`, feature `x`."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    return pd.DataFrame(
        {"t": t, "y": np.sin(t / 3) + 0.1 * rng.standard_normal(n), "x": rng.standard_normal(n)}
    )


def _dated(n=12):
    """A small dated table: `date` (YYYY-MM-DD), `y`, `x`, as strings so cells can be edited."""
    frame = _frame(n).drop(columns="t").round(3).astype(object)
    frame.insert(0, "date", pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"))
    return frame


def _csv(edits=(), sep=",", drop=(), n=12):
    """CSV text of `_dated` with cells `(row, column, value)` replaced and columns dropped."""
    frame = _dated(n)
    for row, column, value in edits:
        frame.loc[row, column] = value
    return frame.drop(columns=list(drop)).to_csv(index=False, sep=sep)


def _config(**changes):
    return load_config(TINY).replace(**changes)


def _assert_error(err, kind):
    assert isinstance(err, KerasLSTMError), type(err)
    assert isinstance(err, kind)
    assert "Traceback" not in str(err)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resign(folder):
    """Rewrite a bundle's manifest so an edited file passes the checksum (a deliberate tamper)."""
    manifest = {
        p.name: _sha(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _lambda_model():
    import keras

    inputs = keras.Input((LOOKBACK, 2))
    outputs = keras.layers.Lambda(lambda z: z[:, -1, :1])(inputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny trained bundle (saved) and its float32 TFLite export, shared by the module."""
    from keras_lstm.training import fit
    from tflite_export import export

    root = tmp_path_factory.mktemp("bad-inputs")
    _frame().to_csv(root / "data.csv", index=False)
    (root / "config.yaml").write_text(
        yaml.safe_dump({**TINY, "data": {**TINY["data"], "path": "data.csv"}})
    )
    bundle = fit(root / "config.yaml", verbose=0)
    bundle.save(root / "bundle")
    lite = root / "lite" / "model.tflite"
    export(bundle, "float32", lite)
    return SimpleNamespace(root=root, bundle=bundle, bundle_dir=root / "bundle", lite=lite)


# --- keras_lstm.data.load_table: CSV files -------------------------------------------------------

DATED = {"targets": ("y",), "time_column": "date"}

CSV_CASES = [
    pytest.param("", {}, r"data\.csv' is empty", id="empty"),
    pytest.param("\n\n\n", {}, r"data\.csv' is empty", id="blank-lines"),
    pytest.param("date,y,x\n", {}, r"data\.csv' has a header but no data rows", id="header-only"),
    pytest.param(_csv(sep=";"), {}, r"single column named 'date;y;x'.*comma", id="semicolons"),
    pytest.param(_csv(sep="\t"), {}, r"data\.csv' has a single column", id="tabs"),
    pytest.param(
        _csv().replace("x\n", "temp\u00e9\n", 1).encode("latin-1"),
        {},
        r"data\.csv' is not UTF-8",
        id="latin-1",
    ),
    pytest.param(_csv().encode("utf-16"), {}, r"data\.csv' is not UTF-8", id="utf-16"),
    pytest.param(
        _csv() + "2020-02-01,1,2,3,4\n", {}, r"data\.csv' is not a readable CSV", id="ragged-row"
    ),
    pytest.param(
        _csv([(i, "x", s) for i, s in enumerate("abcdefghijkl")]),
        {"features": ("x",)},
        r"Column 'x' is not numeric at row 0 \(line 2 of a CSV file\): 'a'",
        id="non-numeric-feature",
    ),
    pytest.param(
        _csv([(7, "x", "n/a?")]),  # data.features at its default: not silently left out
        {},
        r"Column 'x' is not numeric at row 7 \(line 9 of a CSV file\): 'n/a\?', though its "
        r"other cells are numbers",
        id="bad-cell-in-a-default-feature",
    ),
    pytest.param(
        _csv([(5, "y", "high")]),
        {},
        r"Column 'y' is not numeric at row 5 \(line 7 of a CSV file\): 'high'",
        id="text-in-target",
    ),
    pytest.param(
        _csv([(i, "x", 7) for i in range(12)]), {}, r"Feature column 'x' is constant", id="constant"
    ),
    pytest.param(
        _csv([(3, "x", "")]), {}, r"Column 'x' has a missing value at row 3", id="nan-empty"
    ),
    pytest.param(_csv([(4, "y", "NaN")]), {}, r"Column 'y' has a missing value at row 4", id="nan"),
    pytest.param(
        _csv([(2, "x", "inf")]), {}, r"Column 'x' has an infinite value at row 2", id="inf"
    ),
    pytest.param(
        _csv([(6, "y", "-inf")]), {}, r"Column 'y' has an infinite value at row 6", id="-inf"
    ),
    pytest.param(
        _csv([(i, "x", "") for i in range(12)]), {}, r"Column 'x' is empty", id="all-missing"
    ),
    pytest.param(
        _csv([(2, "date", "2020-01-02")]),
        DATED,
        r"Time column 'date' repeats at row 2",
        id="dup-time",
    ),
    pytest.param(
        _csv([(2, "date", "2020-01-02"), (1, "date", "2020-01-03")]),
        DATED,
        r"Time column 'date' goes back in time at row 2",
        id="unsorted-time",
    ),
    pytest.param(
        _csv([(4, "date", "yesterday")]),
        DATED,
        r"Time column 'date' has a value that is not a time at row 4 \(line 6 of a CSV file\): "
        r"'yesterday'",
        id="unparseable-time",
    ),
    pytest.param(
        _csv([(0, "date", "2020-01-01T00:00+05:00")]),
        DATED,
        r"Time column 'date' cannot be read as times",
        id="mixed-time-zones",
    ),
    pytest.param(
        _csv(),
        {"targets": ("y",), "time_column": "when"},
        r"Time column 'when'",
        id="no-time-column",
    ),
    pytest.param(
        _csv(drop=["y"]), {}, r"Target column 'y' \(data.targets\) is not in", id="no-target"
    ),
    pytest.param(
        _csv(), {"targets": None}, r"No target column: set `data.targets`", id="targets-unset"
    ),
    pytest.param(
        _csv(),
        {"features": ("x", "q")},
        r"Feature column 'q' \(data.features\) is not in",
        id="missing-feature",
    ),
]


@pytest.mark.parametrize("content, data, match", CSV_CASES)
def test_load_table_rejects_bad_csv(tmp_path, content, data, match):
    path = tmp_path / "data.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    config = DataConfig(**{"targets": ("y",), **data})
    with pytest.raises(DataError, match=match) as info:
        load_table(path, config)
    _assert_error(info.value, DataError)


def test_a_row_in_an_error_is_the_line_an_editor_shows(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(_csv([(4, "date", "yesterday")]), encoding="utf-8")
    with pytest.raises(DataError, match=r"line (\d+) of a CSV file") as info:
        load_table(path, DataConfig(**DATED))
    line = int(re.search(r"line (\d+) of a CSV file", str(info.value)).group(1))
    assert path.read_text().splitlines()[line - 1].startswith("yesterday,")  # editors count from 1


@pytest.mark.parametrize(
    "source, match",
    [
        pytest.param("missing.csv", r"missing\.csv' does not exist", id="no-such-file"),
        pytest.param(
            "folder", r"folder' is a folder, not a file\. Check `data\.path`", id="folder"
        ),
        pytest.param(pd.DataFrame(columns=["y", "x"]), r"no rows", id="empty-frame"),
        pytest.param(42, r"DataFrame or a CSV path; received int", id="int-source"),
        pytest.param(np.zeros((5, 2)), r"received ndarray", id="array-source"),
    ],
)
def test_load_table_rejects_bad_sources(tmp_path, source, match):
    if isinstance(source, str):
        source = tmp_path / source
        if source.name == "folder":
            source.mkdir()
    with pytest.raises(DataError, match=match) as info:
        load_table(source, DataConfig(targets=("y",)))
    _assert_error(info.value, DataError)


# --- keras_lstm.load_config ----------------------------------------------------------------------

CONFIG_DICT_CASES = [
    pytest.param(
        {"modle": {}}, r"Unknown config key `modle`\. Did you mean `model`", id="unknown-section"
    ),
    pytest.param(
        {"training": {"epoch": 3}},
        r"`training\.epoch`\. Did you mean `training\.epochs`",
        id="unknown-key",
    ),
    pytest.param({"model": {"units": "64"}}, r"`model\.units` must be a list", id="units-str"),
    pytest.param(
        {"model": {"units": [0]}}, r"`model\.units\[0\]` must be an integer >= 1", id="units-0"
    ),
    pytest.param({"model": {"units": [-4]}}, r"`model\.units\[0\]`.*=-4", id="units-negative"),
    pytest.param({"model": {"units": []}}, r"`model\.units` must be a non-empty", id="units-empty"),
    pytest.param(
        {"model": {"dropout": "0.2"}}, r"`model\.dropout` must be a finite number", id="dropout-str"
    ),
    pytest.param({"model": {"bidirectional": "yes"}}, r"`model\.bidirectional`", id="bool-str"),
    pytest.param(
        {"training": {"epochs": 0}}, r"`training\.epochs` must be an integer >= 1", id="epochs-0"
    ),
    pytest.param(
        {"training": {"epochs": "ten"}}, r"`training\.epochs` must be an integer", id="epochs-str"
    ),
    pytest.param({"training": {"batch_size": -1}}, r"`training\.batch_size`", id="batch-negative"),
    pytest.param(
        {"training": {"cv_splits": 1}}, r"`training\.cv_splits` must be an integer >= 2", id="cv-1"
    ),
    pytest.param({"training": {"learning_rate": 0}}, r"`training\.learning_rate`", id="lr-0"),
    pytest.param(
        {"data": {"lookback": 0}}, r"`data\.lookback` must be an integer >= 1", id="lookback-0"
    ),
    pytest.param(
        {"data": {"lookback": True}}, r"`data\.lookback` must be an integer", id="lookback-bool"
    ),
    pytest.param({"data": {"horizon": -2}}, r"`data\.horizon`", id="horizon-negative"),
    pytest.param({"data": {"test_size": 0}}, r"`data\.test_size`", id="test-size-0"),
    pytest.param({"data": {"test_size": 1.5}}, r"`data\.test_size`", id="test-size-1.5"),
    pytest.param(
        {"data": {"targets": ["y", "y"]}}, r"`data\.targets`.*repeated", id="targets-repeated"
    ),
    pytest.param({"data": "load.csv"}, r"section `data` must be a mapping", id="section-str"),
    pytest.param({"task": "forecast"}, r"`task` must be one of", id="task"),
    pytest.param({"seed": -1}, r"`seed` must be an integer >= 0", id="seed-negative"),
    pytest.param(
        {"tuning": {"search_space": [1]}}, r"`tuning\.search_space`", id="search-space-list"
    ),
]


@pytest.mark.parametrize("raw, match", CONFIG_DICT_CASES)
def test_load_config_rejects_bad_values(raw, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(raw)
    _assert_error(info.value, ConfigError)


@pytest.mark.parametrize(
    "content, match",
    [
        pytest.param("model: [1,\n", r"config\.yaml' is not valid YAML", id="bad-yaml"),
        pytest.param(  # where, as an editor counts, and what: PyYAML's own words
            "seed: 1\nmodel:\n  units: [4, 8\n  dropout: 0.1\n",
            r"not valid YAML or JSON at line 4, column 10: expected ',' or '\]', but got ':' "
            r"\(while parsing a flow sequence\)",
            id="yaml-line-and-column",
        ),
        pytest.param(
            "model:\n\tunits: [4]\n",
            r"config\.yaml' is not valid YAML or JSON at line 2, column 1: found character '\\t'",
            id="tab-indent",
        ),
        pytest.param("- 1\n- 2\n", r"config\.yaml' must hold a mapping", id="yaml-list"),
        pytest.param(b"seed: 1 # caf\xe9\n", r"config\.yaml' is not valid YAML", id="latin-1"),
        pytest.param(
            "seed: !!python/object/apply:os.system ['echo owned']\n",
            r"config\.yaml' is not valid YAML",
            id="python-tag",
        ),
        pytest.param('{"model": {"units": [0]}}', r"`model\.units\[0\]`", id="json-bad-value"),
        pytest.param(None, r"config\.yaml' does not exist", id="missing-file"),
        pytest.param("folder", r"config\.yaml' is a folder, not a file", id="folder"),
    ],
)
def test_load_config_rejects_bad_files(tmp_path, content, match):
    path = tmp_path / "config.yaml"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    _assert_error(info.value, ConfigError)


# --- keras_lstm.training.prepare -----------------------------------------------------------------


def _labelled(n=ROWS, label="up"):
    return _frame(n).assign(label=label)


def _long_table(labels):
    """Long format: three rows per series, one label per series."""
    rows = [
        {"id": i, "x": float(j + i), "label": label}
        for i, label in enumerate(labels)
        for j in range(3)
    ]
    return pd.DataFrame(rows)


PREPARE_CASES = [
    pytest.param(
        {"data.lookback": 100},
        _frame(),
        DataError,
        r"40 rows but one window needs lookback \+ horizon = 101 rows.*`data\.lookback`",
        id="lookback-longer-than-data",
    ),
    pytest.param(
        {"training.cv_splits": 5},
        _frame(10),
        DataError,
        r"10 rows but 5 walk-forward folds.*`training\.cv_splits`",
        id="too-few-rows-for-folds",
    ),
    pytest.param(  # each fold would get a handful of windows: refused, with a workable count
        {"training.cv_splits": 3, "data.lookback": 8},
        _frame(),
        DataError,
        r"first walk-forward fold would train on 6 windows.*`training\.cv_splits: 2`",
        id="folds-too-small-to-learn",
    ),
    pytest.param(
        {"task": "classification", "data.targets": ["label"]},
        _labelled(),
        DataError,
        r"Label column 'label' holds one class only \('up'\)",
        id="one-class",
    ),
    pytest.param(
        {"task": "classification", "data.targets": ["label", "y"]},
        _labelled(),
        ConfigError,
        r"exactly one label column in `data\.targets`",
        id="classification-two-targets",
    ),
    pytest.param(
        {"task": "classification", "data.targets": ["label"], "data.horizon": 2},
        _labelled(),
        ConfigError,
        r"`data\.horizon`",
        id="classification-horizon",
    ),
    pytest.param(
        {"data.label": "label", "data.time_column": None},
        _labelled(),
        ConfigError,
        r"`data\.label`.*needs `data\.series_id`",
        id="label-without-series",
    ),
    pytest.param(
        {
            "data.series_id": "id",
            "data.label": "label",
            "data.time_column": None,
            "task": "classification",
        },
        _long_table(["a"] * 6 + ["b"] * 6).assign(
            label=lambda f: np.where(f.index == 4, "b", f.label)
        ),
        DataError,
        r"Label column 'label' changes within series 1",
        id="label-changes-in-series",
    ),
    pytest.param(
        {
            "data.series_id": "id",
            "data.label": "label",
            "data.time_column": None,
            "task": "classification",
        },
        _long_table(["a"] * 10 + ["b"] * 2),
        DataError,
        r"Class 'b' has 2 training sequences.*`training\.cv_splits`",
        id="class-too-small-for-folds",
    ),
    pytest.param(
        {"data.series_id": "id", "data.label": "label", "data.time_column": None},
        _long_table(["a", "b"] * 6),
        DataError,
        r"'label'",
        id="text-label-for-regression",
    ),
    pytest.param({}, 42, DataError, r"received int", id="data-int"),
    pytest.param({}, None, DataError, r"No data given: set `data\.path`", id="data-none"),
]


@pytest.mark.parametrize("changes, data, kind, match", PREPARE_CASES)
def test_prepare_rejects_bad_data(changes, data, kind, match):
    from keras_lstm.training import prepare

    config = _config(**changes)
    with pytest.raises(kind, match=match) as info:
        prepare(config, data)
    _assert_error(info.value, kind)


def test_prepare_rejects_a_test_file_with_other_columns(tmp_path):
    from keras_lstm.training import prepare

    _frame().rename(columns={"x": "x2"}).to_csv(tmp_path / "test.csv", index=False)
    config = _config(**{"data.test_path": str(tmp_path / "test.csv")})
    with pytest.raises(DataError, match=r"test file's feature columns \['y', 'x2'\] differ"):
        prepare(config, _frame())


# --- keras_lstm.training.cross_validate / fit: fail before anything is written -------------------

TRAIN_CASES = [
    pytest.param(
        "cross_validate",
        {"model": {"units": [0]}},
        None,
        ConfigError,
        r"`model\.units\[0\]`",
        id="cv-units-0",
    ),
    pytest.param(
        "cross_validate",
        "unknown-key.yaml",
        None,
        ConfigError,
        r"`training\.epoch`",
        id="cv-yaml-unknown-key",
    ),
    pytest.param(
        "cross_validate",
        {"training.cv_splits": 5},
        _frame(10),
        DataError,
        r"5 walk-forward folds",
        id="cv-too-few-rows-for-folds",
    ),
    pytest.param(
        "cross_validate",
        {},
        _frame().assign(x=lambda f: f.x.where(f.index != 7)),
        DataError,
        r"Column 'x' has a missing value at row 7",
        id="cv-nan",
    ),
    pytest.param(
        "fit",
        {},
        _frame().assign(x=1.5),
        DataError,
        r"Feature column 'x' is constant",
        id="fit-constant",
    ),
    pytest.param("fit", {}, _frame().to_numpy(), DataError, r"received ndarray", id="fit-array"),
    pytest.param(
        "fit",
        {"data.lookback": 100},
        _frame(),
        DataError,
        r"`data\.lookback`",
        id="fit-lookback-too-long",
    ),
    pytest.param(
        "fit",
        {"task": "classification", "data.targets": ["label"]},
        _labelled(label="down"),
        DataError,
        r"Label column 'label' holds one class only",
        id="fit-one-class",
    ),
    pytest.param(
        "fit",
        {"data.path": "gone.csv"},
        None,
        DataError,
        r"gone\.csv' does not exist",
        id="fit-missing-csv",
    ),
    pytest.param(
        "fit",
        {},
        _frame().assign(t=lambda f: f.t.where(f.index != 9, 3)),
        DataError,
        r"Time column 't' goes back in time at row 9",
        id="fit-unsorted-time",
    ),
]


@pytest.mark.parametrize("entry, config, data, kind, match", TRAIN_CASES)
def test_training_rejects_bad_input_and_writes_nothing(tmp_path, entry, config, data, kind, match):
    from keras_lstm import training

    if isinstance(config, str):
        (tmp_path / config).write_text("training:\n  epoch: 3\n")
        config = tmp_path / config
    elif config and all(isinstance(value, dict) for value in config.values()):
        config = {**TINY, **config}  # raw sections, validated by the entry point
    else:
        config = _config(**config)
    out = tmp_path / "run"
    with pytest.raises(kind, match=match) as info:
        getattr(training, entry)(config, data, out_dir=out, verbose=0)
    _assert_error(info.value, kind)
    assert not out.exists()


# --- keras_lstm.Bundle.load: missing, truncated, edited files ---------------------------------


def _truncate(folder, name):
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])


def _edit_json(folder, name, resign=False, **changes):
    raw = json.loads((folder / name).read_text())
    raw.update(changes)
    (folder / name).write_text(json.dumps(raw))
    if resign:
        _resign(folder)


def _replace_model(folder, model):
    (folder / "model.keras").unlink()
    model.save(folder / "model.keras")
    _resign(folder)


def _write(folder, name, content, resign=False):
    target = folder / name
    target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    if resign:
        _resign(folder)


BUNDLE_CASES = [
    pytest.param(lambda b: (b / "model.keras").unlink(), r"has no model\.keras", id="no-model"),
    pytest.param(
        lambda b: (b / "preprocessing.json").unlink(),
        r"has no preprocessing\.json",
        id="no-preprocessing",
    ),
    pytest.param(
        lambda b: (b / "manifest.json").unlink(), r"has no manifest\.json", id="no-manifest"
    ),
    pytest.param(
        lambda b: _truncate(b, "model.keras"),
        r"model\.keras was changed or truncated",
        id="truncated-model",
    ),
    pytest.param(
        lambda b: _truncate(b, "preprocessing.json"),
        r"preprocessing\.json was changed",
        id="truncated-json",
    ),
    pytest.param(
        lambda b: _edit_json(b, "preprocessing.json", lookback=99),
        r"preprocessing\.json was changed",
        id="edited-lookback",
    ),
    pytest.param(
        lambda b: _write(b, "config.yaml", (b / "config.yaml").read_text().replace("- 4", "- 400")),
        r"config\.yaml was changed",
        id="edited-config",
    ),
    pytest.param(
        lambda b: _edit_json(b, "metrics.json", test={}),
        r"metrics\.json was changed",
        id="edited-metrics",
    ),
    pytest.param(
        lambda b: _write(b, "manifest.json", "{oops"),
        r"manifest\.json is not valid JSON",
        id="bad-manifest",
    ),
    pytest.param(
        lambda b: _replace_model(b, _lambda_model()),
        r"model\.keras cannot be loaded safely: .*Lambda",
        id="lambda-layer",
    ),
    pytest.param(
        lambda b: _write(b, "model.keras", b"not a zip file", resign=True),
        r"model\.keras cannot be loaded",
        id="model-not-zip",
    ),
    pytest.param(
        lambda b: _edit_json(b, "preprocessing.json", resign=True, feature_names="x"),
        r"preprocessing\.json has no valid `feature_names`",
        id="resigned-feature-names-type",
    ),
    pytest.param(
        lambda b: _edit_json(b, "preprocessing.json", resign=True, format=99),
        r"preprocessing\.json is bundle format 99",
        id="resigned-format",
    ),
    pytest.param(
        lambda b: _write(b, "config.yaml", "model:\n  unitz: [4]\n", resign=True),
        r"config\.yaml is invalid: Unknown config key `model\.unitz`",
        id="resigned-bad-config",
    ),
    pytest.param(
        lambda b: _edit_json(b, "preprocessing.json", resign=True, feature_names=["y", "x", "w"]),
        r"feature_names",
        id="resigned-feature-names-vs-scaler",
    ),
]


@pytest.mark.parametrize("tamper, match", BUNDLE_CASES)
def test_bundle_load_rejects_damaged_bundles(trained, tmp_path, tamper, match):
    from keras_lstm.bundle import Bundle

    folder = tmp_path / "bundle"
    shutil.copytree(trained.bundle_dir, folder)
    tamper(folder)
    with pytest.raises(BundleError, match=match) as info:
        Bundle.load(folder)
    _assert_error(info.value, BundleError)


def test_bundle_load_rejects_a_file_for_a_folder(trained):
    from keras_lstm.bundle import Bundle

    with pytest.raises(BundleError, match=r"model\.keras' does not exist"):
        Bundle.load(trained.bundle_dir / "model.keras")


# --- a full disk while a bundle or an export is written -----------------------------------------


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_full_disk_while_a_bundle_is_saved_keeps_the_previous_bundle(
    trained, tmp_path, monkeypatch
):
    from keras_lstm.bundle import Bundle

    folder = tmp_path / "bundle"
    shutil.copytree(trained.bundle_dir, folder)
    before = _tree(folder)
    real_save = np.save

    def save_until_the_disk_fills(path, array, **kwargs):
        real_save(path, array[: len(array) // 2], **kwargs)  # part of the file, then full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", save_until_the_disk_fills)
    with pytest.raises(OutputError, match=r"'.*bundle'.*No space left on device") as info:
        trained.bundle.save(folder)
    _assert_error(info.value, OutputError)
    monkeypatch.undo()
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder
    Bundle.load(folder)  # whole: every file matches its manifest


def test_a_full_disk_while_exporting_keeps_the_previous_file_and_report(
    trained, tmp_path, monkeypatch
):
    from keras_lstm import files
    from tflite_export import export

    folder = tmp_path / "lite"
    shutil.copytree(trained.lite.parent, folder)
    before = _tree(folder)

    def write_until_the_disk_fills(fd, content):
        with os.fdopen(fd, "wb") as handle:
            handle.write(content[: len(content) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "_write_all", write_until_the_disk_fills)
    with pytest.raises(OutputError, match=r"model\.tflite.*No space left on device") as info:
        export(trained.bundle, "float32", folder / trained.lite.name)
    _assert_error(info.value, OutputError)
    assert _tree(folder) == before


# --- keras_lstm.Bundle.predict -------------------------------------------------------------------

PREDICT_CASES = [
    pytest.param(
        lambda f: f.drop(columns="x"),
        r"Feature column 'x', used in training, is missing",
        id="missing-feature",
    ),
    pytest.param(
        lambda f: f.rename(columns={"x": "X"}),
        r"Feature column 'x', used in training",
        id="renamed-feature",
    ),
    pytest.param(
        lambda f: f.assign(z=1.0), r"Column 'z' was not in the training data", id="unknown-column"
    ),
    pytest.param(lambda f: f.head(2), r"2 rows; one window needs lookback = 4", id="too-few-rows"),
    pytest.param(lambda f: f.head(0), r"no rows", id="no-rows"),
    pytest.param(
        lambda f: f.assign(x="n/a!"),
        r"Column 'x' is not numeric at row 0 \(line 2 of a CSV file\): 'n/a!'",
        id="non-numeric",
    ),
    pytest.param(
        lambda f: f.assign(x=f.x.where(f.index != 12)),
        r"Column 'x' has a missing value at row 2",
        id="nan",
    ),
    pytest.param(
        lambda f: f.assign(y=np.inf), r"Column 'y' has an infinite value at row 0", id="inf"
    ),
    pytest.param(
        lambda f: f.iloc[::-1], r"Time column 't' goes back in time at row 1", id="reversed-time"
    ),
    pytest.param(
        lambda f: f.to_numpy(), r"Expected rows of 2 features \['y', 'x'\]; received", id="array"
    ),
    pytest.param(lambda f: "nowhere.csv", r"nowhere\.csv' does not exist", id="missing-csv"),
]


@pytest.mark.parametrize("make, match", PREDICT_CASES)
def test_bundle_predict_rejects_bad_frames(trained, make, match):
    frame = _frame().iloc[10:20]
    with pytest.raises(DataError, match=match) as info:
        trained.bundle.predict(make(frame))
    _assert_error(info.value, DataError)


# --- tflite_export.LitePredictor -----------------------------------------------------------------


def _lite_copy(trained, folder, content=None, report=None):
    folder.mkdir(exist_ok=True)
    path = folder / "model.tflite"
    path.write_bytes(
        trained.lite.read_bytes() if content is None else content(trained.lite.read_bytes())
    )
    report_text = (trained.lite.parent / "model.tflite.json").read_text()
    if report != "absent":
        (folder / "model.tflite.json").write_text(report_text if report is None else report)
    return path


LITE_FILE_CASES = [
    pytest.param({"content": lambda b: b[: len(b) // 2]}, r"model\.tflite", id="truncated"),
    pytest.param({"content": lambda b: b[:16]}, r"model\.tflite", id="truncated-header"),
    pytest.param({"content": lambda b: b""}, r"model\.tflite", id="empty-file"),
    pytest.param(
        {"content": lambda b: b"PK\x03\x04" + b"\0" * 200},
        r"model\.tflite",
        id="not-tflite",
    ),
    pytest.param({"report": "absent"}, r"model\.tflite\.json' is missing", id="no-report"),
    pytest.param(
        {"report": "{oops"}, r"model\.tflite\.json' is not valid JSON", id="report-not-json"
    ),
    pytest.param({"report": "[1, 2]"}, r"model\.tflite\.json", id="report-list"),
    pytest.param({"report": "{}"}, r"model\.tflite\.json", id="report-empty"),
]


@pytest.mark.parametrize("damage, match", LITE_FILE_CASES)
def test_lite_predictor_rejects_damaged_files(trained, tmp_path, damage, match):
    from tflite_export import LitePredictor

    path = _lite_copy(trained, tmp_path / "lite", **damage)
    with pytest.raises(BundleError, match=match) as info:
        LitePredictor(path)
    _assert_error(info.value, BundleError)


def test_lite_predictor_rejects_a_missing_file(tmp_path):
    from tflite_export import LitePredictor

    with pytest.raises(BundleError, match=r"nope\.tflite' does not exist"):
        LitePredictor(tmp_path / "nope.tflite")


LITE_INPUT_CASES = [
    pytest.param(
        lambda f: f.drop(columns="x"),
        r"Feature column 'x', used in training, is missing",
        id="missing-feature",
    ),
    pytest.param(
        lambda f: f.rename(columns={"x": "X"}),
        r"Feature column 'x', used in training, is missing",
        id="renamed-feature",
    ),
    pytest.param(lambda f: f.head(3), r"3 rows; one window needs lookback = 4", id="too-few-rows"),
    pytest.param(
        lambda f: f[["y", "x", "t"]].to_numpy(),
        r"Expected rows of 2 features.*\(10, 3\)",
        id="wrong-width",
    ),
    pytest.param(lambda f: f["x"].to_numpy(), r"Expected rows of 2 features.*\(10,\)", id="rank-1"),
    pytest.param(lambda f: f[["y", "x"]].to_numpy()[:, :, None], r"\(10, 2, 1\)", id="rank-3"),
    pytest.param(
        lambda f: f[["y", "x"]].to_numpy().astype(str),
        r"numbers|numeric",
        id="str-dtype",
    ),
    pytest.param(lambda f: f.assign(x="high"), r"'x'", id="non-numeric-column"),
    pytest.param(lambda f: f.assign(x=np.nan), r"'x'", id="nan"),
]


@pytest.mark.parametrize("make, match", LITE_INPUT_CASES)
def test_lite_predictor_rejects_bad_rows(trained, make, match):
    from tflite_export import LitePredictor

    predictor = LitePredictor(trained.lite)
    with pytest.raises(DataError, match=match) as info:
        predictor.predict(make(_frame().iloc[10:20].reset_index(drop=True)))
    _assert_error(info.value, DataError)


# --- tflite_export.export -------------------------------------------------------------------------


def _windows(rng=0, n=8):
    return np.random.default_rng(rng).standard_normal((n, LOOKBACK, 2)).astype(np.float32)


EXPORT_CASES = [
    pytest.param(
        lambda t: (t.bundle.model, "int4", _windows()), ExportError, r"mode='int4'", id="bad-mode"
    ),
    pytest.param(
        lambda t: ("model.keras", "float32", _windows()),
        ExportError,
        r"received str",
        id="not-a-model",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", None), ExportError, r"needs windows", id="no-windows"
    ),
    pytest.param(
        lambda t: (_lambda_model(), "float32", _windows()),
        ExportError,
        r"Layer 'lambda(_\d+)?' of type Lambda is not supported",
        id="lambda-layer",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", _windows()[:, :2]),
        ExportError,
        r"have 2 steps; the model takes 4",
        id="short-windows",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", _windows()[:0]),
        ExportError,
        r"No validation windows",
        id="no-rows",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", _windows()[:, :, 0]),
        ExportError,
        r"shape|rank",
        id="rank-2",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", _windows()[..., :1]),
        ExportError,
        r"features|shape",
        id="wrong-features",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", _windows().astype(str)),
        ExportError,
        r"dtype|numeric|numbers",
        id="str-dtype",
    ),
    pytest.param(
        lambda t: (t.bundle.model, "float32", np.full_like(_windows(), np.nan)),
        ExportError,
        r"NaN|finite",
        id="nan-windows",
    ),
    pytest.param(
        lambda t: (_bundle_without_data(t.bundle), "float32", None),
        BundleError,
        r"training data \(.*gone\.csv\) is needed",
        id="bundle-data-gone",
    ),
]


def _bundle_without_data(bundle):
    from keras_lstm.bundle import Bundle

    config = bundle.config.replace(
        **{"data.path": str(Path(bundle.config.data.path).with_name("gone.csv"))}
    )
    return Bundle(bundle.model, bundle.preprocessing, config, bundle.metrics)


@pytest.mark.parametrize("make, kind, match", EXPORT_CASES)
def test_export_rejects_bad_input_and_writes_nothing(trained, tmp_path, make, kind, match):
    from tflite_export import export

    model, mode, windows = make(trained)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(kind, match=match) as info:
        export(model, mode, out / "model.tflite", windows)
    _assert_error(info.value, kind)
    assert list(out.iterdir()) == []


# --- keras_lstm.data.sequences.sequences_from_arrays ---------------------------------------------

ARRAY_CASES = [
    pytest.param(
        np.zeros((3, 5)),
        [0, 1, 0],
        None,
        r"shape \(samples, time, features\).*\(3, 5\)",
        id="rank-2",
    ),
    pytest.param(np.zeros((3, 5, 2, 1)), [0, 1, 0], None, r"\(3, 5, 2, 1\)", id="rank-4"),
    pytest.param(7, [0], None, r"Received: int", id="scalar"),
    pytest.param(["abc", "def"], [0, 1], None, r"Sequence 0 has shape \(\)", id="strings"),
    pytest.param(
        np.full((3, 5, 2), "a"), [0, 1, 0], None, r"Sequence 0 has dtype <U1", id="str-dtype"
    ),
    pytest.param(
        np.zeros((3, 5, 2), dtype=object), [0, 1, 0], None, r"dtype object", id="object-dtype"
    ),
    pytest.param(np.zeros((3, 5, 2), dtype=bool), [0, 1, 0], None, r"dtype bool", id="bool-dtype"),
    pytest.param(
        np.zeros((3, 5, 2), dtype=complex), [0, 1, 0], None, r"dtype complex128", id="complex-dtype"
    ),
    pytest.param(
        np.where(np.arange(30).reshape(3, 5, 2) == 17, np.nan, 0.0),
        [0, 1, 0],
        None,
        r"Sequence 1 holds NaN",
        id="nan",
    ),
    pytest.param(
        np.where(np.arange(30).reshape(3, 5, 2) == 25, np.inf, 0.0),
        [0, 1, 0],
        None,
        r"Sequence 2 holds NaN or inf",
        id="inf",
    ),
    pytest.param(
        np.zeros((3, 0, 2)), [0, 1, 0], None, r"Sequence 0 has shape \(0, 2\)", id="no-steps"
    ),
    pytest.param([], [], None, r"No sequences given", id="empty"),
    pytest.param(
        [np.zeros((5, 2)), [[1, 2], [3]]],
        [0, 1],
        None,
        r"Sequence 1 is not a rectangular",
        id="ragged",
    ),
    pytest.param(
        [np.zeros((5, 2)), np.zeros((4, 3))],
        [0, 1],
        None,
        r"different numbers of features: \[2, 3\]",
        id="widths",
    ),
    pytest.param(
        np.zeros((3, 5, 2)),
        [0, 1],
        None,
        r"one label per sequence \(3\).*\(2,\)",
        id="too-few-labels",
    ),
    pytest.param(np.zeros((3, 5, 2)), np.zeros((3, 2)), None, r"\(3, 2\)", id="labels-2d"),
    pytest.param(
        np.zeros((3, 5, 2)),
        [0, 1, 0],
        ["a"],
        r"2 features but 1 feature names",
        id="names-mismatch",
    ),
]


@pytest.mark.parametrize("x, y, names, match", ARRAY_CASES)
def test_sequences_from_arrays_rejects_bad_arrays(x, y, names, match):
    with pytest.raises(DataError, match=match) as info:
        sequences_from_arrays(x, y, names)
    _assert_error(info.value, DataError)


# --- tuning.tune: a search space that cannot be sampled ------------------------------------------

TUNE_CASES = [
    pytest.param({"model.units": []}, r"`model\.units` has no choices", id="no-choices"),
    pytest.param(
        {"training.epochs": {"min": 5, "max": 1}},
        r"`training\.epochs`: min must not exceed max",
        id="min-above-max",
    ),
    pytest.param({"model.units": [0, 4]}, r"`model\.units`.*>= 1", id="choice-config-rejects"),
    pytest.param(
        {"training.learning_rate": {"min": 0, "max": 0.1, "sampling": "log"}},
        r"log sampling needs min > 0",
        id="log-from-0",
    ),
    pytest.param({"optimizer": ["adam"]}, r"`optimizer` must be a dotted key", id="undotted-key"),
]


@pytest.mark.parametrize("space, match", TUNE_CASES)
def test_tune_rejects_unsampleable_search_space(tmp_path, space, match):
    import tuning

    config = _config(**{"tuning.search_space": space})
    out = tmp_path / "tune"
    with pytest.raises(ConfigError, match=match) as info:
        tuning.tune(config, _frame(), out_dir=out, verbose=0)
    _assert_error(info.value, ConfigError)
    assert not out.exists()


# --- the CLI: exit code 2, one line on stderr, no traceback, nothing written ---------------------


def _cli(args, cwd):
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [sys.executable, "-m", "keras_lstm.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def _train_setup(csv=None, **changes):
    """Write `data.csv` (or `csv` text) and `config.yaml` (TINY plus dotted `changes`)."""

    def setup(folder, trained):
        if csv is None:
            _frame().to_csv(folder / "data.csv", index=False)
        else:
            (folder / "data.csv").write_text(csv)
        raw = json.loads(json.dumps({**TINY, "data": {**TINY["data"], "path": "data.csv"}}))
        for dotted, value in changes.items():  # written as given: the CLI must reject it
            *parents, key = dotted.split(".")
            section = raw
            for part in parents:
                section = section.setdefault(part, {})
            section[key] = value
        (folder / "config.yaml").write_text(yaml.safe_dump(raw))
        return ["train", "config.yaml", "--out", "out/run"]

    return setup


def _train_into(out, make):
    """`train` (a valid config) into `out`, which `make(folder, trained)` prepared."""

    def setup(folder, trained):
        args = _train_setup()(folder, trained)
        make(folder, trained)
        return [*args[:-1], out]

    return setup


def _finished_run(folder, trained):
    """`prev/`: a finished run of the shared bundle's config, not this case's."""
    shutil.copytree(trained.bundle_dir, folder / "prev" / "bundle")
    (folder / "prev" / "metrics.json").write_text(json.dumps(trained.bundle.metrics))


def _predict_setup(tamper=None, frame=None, lite=None):
    def setup(folder, trained):
        shutil.copytree(trained.bundle_dir, folder / "bundle")
        if tamper:
            tamper(folder / "bundle")
        (frame or (lambda f: f))(_frame().iloc[10:20]).to_csv(folder / "input.csv", index=False)
        model = "bundle"
        if lite:
            model = str(_lite_copy(trained, folder / "lite", content=lite).relative_to(folder))
        return ["predict", model, "--input", "input.csv", "--output", "out/predictions.csv"]

    return setup


def _export_setup(tamper):
    def setup(folder, trained):
        shutil.copytree(trained.bundle_dir, folder / "bundle")
        tamper(folder / "bundle")
        return ["export", "bundle", "--quantize", "float32", "--out", "out/model.tflite"]

    return setup


def _tune_setup(folder, trained):
    _frame().to_csv(folder / "data.csv", index=False)
    raw = {
        **TINY,
        "data": {**TINY["data"], "path": "data.csv"},
        "tuning": {"search_space": {"model.units": []}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    return ["tune", "config.yaml", "--out", "out/tune"]


CLI_CASES = [
    pytest.param(
        _train_into("afile", lambda folder, trained: (folder / "afile").write_text("mine")),
        r"--out 'afile' is a file, not a folder: name a folder for the run",
        id="train-out-is-a-file",
    ),
    pytest.param(
        lambda folder, trained: (
            [(folder / "afile").write_text("mine"), "quickstart"][1:] + ["--out", "afile"]
        ),
        r"--out 'afile' is a file, not a folder",
        id="quickstart-out-is-a-file",
    ),
    pytest.param(
        lambda folder, trained: (
            [_tune_setup(folder, trained), "tune", "config.yaml"][1:] + ["--out", "data.csv"]
        ),
        r"--out 'data\.csv' is a file, not a folder",
        id="tune-out-is-a-file",
    ),
    pytest.param(
        _train_into("prev", _finished_run),
        r"'prev' holds a finished run of another config \(differs in data\.path.*"
        r"Choose another --out, or add --overwrite",
        id="train-over-another-run",
    ),
    pytest.param(
        lambda folder, trained: [(folder / "adir").mkdir(), "train", "adir"][1:],
        r"Config file 'adir' is a folder, not a file",
        id="train-config-is-a-folder",
    ),
    pytest.param(
        lambda folder, trained: [
            (folder / "c.yaml").write_text("seed: 1\ndata: {path: x.csv\n"),
            "train",
            "c.yaml",
        ][1:],
        r"'c\.yaml' is not valid YAML or JSON at line 3, column 1: .*while parsing a flow mapping",
        id="train-yaml-syntax",
    ),
    pytest.param(
        lambda folder, trained: [
            shutil.copytree(trained.bundle_dir, folder / "bundle"),
            (folder / "adir").mkdir(),
            *["predict", "bundle", "--input", "adir", "--output", "out/p.csv"],
        ][2:],
        r"Input file 'adir' is a folder, not a file\. Check --input",
        id="predict-input-is-a-folder",
    ),
    pytest.param(
        lambda folder, trained: ["export", "bundle", "--quantize", "int4"],
        r"keras-lstm export: error: argument --quantize: invalid choice: 'int4'",
        id="usage-error",
    ),
    pytest.param(
        _train_setup(**{"model.units": [0]}),
        r"`model\.units\[0\]` must be an integer >= 1",
        id="train-units-0",
    ),
    pytest.param(_train_setup(csv=""), r"data\.csv' is empty", id="train-empty-csv"),
    pytest.param(
        _train_setup(csv=_frame().to_csv(index=False, sep=";")),
        r"data\.csv' has a single column",
        id="train-semicolons",
    ),
    pytest.param(
        _train_setup(
            csv=_frame().assign(t=lambda f: f.t.where(f.index != 5, 4)).to_csv(index=False)
        ),
        r"Time column 't' repeats at row 5",
        id="train-duplicate-time",
    ),
    pytest.param(
        _train_setup(**{"data.lookback": 100}),
        r"lookback \+ horizon = 101 rows",
        id="train-lookback-too-long",
    ),
    pytest.param(
        _train_setup(
            csv=_labelled().to_csv(index=False),
            **{"task": "classification", "data.targets": ["label"]},
        ),
        r"Label column 'label' holds one class only",
        id="train-one-class",
    ),
    pytest.param(
        _predict_setup(tamper=lambda b: _truncate(b, "model.keras")),
        r"model\.keras was changed or truncated",
        id="predict-truncated-model",
    ),
    pytest.param(
        _predict_setup(frame=lambda f: f.rename(columns={"x": "temp"})),
        r"Feature column 'x', used in training, is missing",
        id="predict-feature-names",
    ),
    pytest.param(
        _predict_setup(lite=lambda b: b"not a flatbuffer" * 8),
        r"model\.tflite",
        id="predict-not-tflite",
    ),
    pytest.param(
        _export_setup(lambda b: _replace_model(b, _lambda_model())),
        r"model\.keras cannot be loaded safely: .*Lambda",
        id="export-lambda-layer",
    ),
    pytest.param(
        _tune_setup, r"Search space key `model\.units` has no choices", id="tune-no-choices"
    ),
    pytest.param(  # refused before the bundle is loaded or anything converted
        lambda folder, trained: ["export", "missing-bundle", "--max-error", "-1"],
        r"--max-error .* a number >= 0 such as 0\.05\. Received: -1\.0",
        id="export-negative-max-error",
    ),
    pytest.param(
        _train_setup(csv=_frame(1).to_csv(index=False)),
        r"The data has 1 row; training needs at least lookback \+ horizon rows",
        id="train-one-row",
    ),
]


@pytest.fixture(scope="module")
def cli_runs(trained, tmp_path_factory):
    """Start every CLI case at once, three at a time (each spends seconds importing
    TensorFlow); each test then waits for its own run. Maps a case id to
    `(folder, listing before, future of the CompletedProcess)`."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=3)
    runs = {}
    for case in CLI_CASES:
        folder = tmp_path_factory.mktemp(f"cli-{case.id}")
        args = case.values[0](folder, trained)
        (folder / "out").mkdir()
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        runs[case.id] = (folder, before, pool.submit(_cli, args, folder))
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("setup, match", CLI_CASES)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(request, cli_runs, setup, match):
    folder, before, future = cli_runs[request.node.callspec.id]
    result = future.result()
    after = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, result.stderr
    assert re.search(match, lines[0]), lines[0]
    assert list((folder / "out").iterdir()) == []
    assert after == before
