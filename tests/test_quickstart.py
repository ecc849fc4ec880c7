"""`keras-lstm quickstart` on a reduced budget: every artifact it promises is there."""

import json
import os
import re
import subprocess
import sys

import pandas as pd


def test_quickstart_writes_everything(tmp_path):
    env = {**os.environ, "KERAS_LSTM_QUICKSTART_EPOCHS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_lstm.cli", "quickstart", "--out", str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "qs"
    assert "capped at 1 per fit" in result.stdout
    # one line per fit (each fold and the refit), no line per epoch, nothing on stderr
    fits = [line for line in result.stdout.splitlines() if re.search(r"\d+ epochs?, best ", line)]
    assert len(fits) == len(json.loads((out / "metrics.json").read_text())["cv"]["folds"]) + 1
    assert "Epoch 1/" not in result.stdout
    assert result.stderr == "", result.stderr[-2000:]  # no LiteRT or quantizer notices
    assert "naive (test)" in result.stdout and "TFLite export" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"cv", "test", "baselines", "beats_baselines"}
    # the summary says plainly whether the model beats the baselines, as metrics.json does
    assert ("The model beats every baseline" in result.stdout) == metrics["beats_baselines"]
    assert ("WARNING: the model does not beat" in result.stdout) != metrics["beats_baselines"]
    for name in ("model.keras", "preprocessing.json", "loss.png", "forecast.png", "folds.png"):
        assert (out / "bundle" / name).is_file()
    for mode in ("float32", "int8"):
        report = json.loads((out / f"model-{mode}.tflite.json").read_text())
        assert report["builtin_only"] is True and report["mode"] == mode
        assert summary["tflite"][mode].endswith(f"model-{mode}.tflite")
    predictions = pd.read_csv(out / "predictions-int8.csv")
    assert list(predictions.columns) == ["date", "temp_max"]
    assert len(predictions) == 1461 - 14 + 1
    assert predictions["temp_max"].between(-20, 50).all()
