"""Training on one Keras backend, predicting and exporting on the other; the same seed giving the
same metrics on the default training backend; and CLI paths that never import Keras.

The in-process tests run on the backend a user gets (conftest imports keras-lstm first, which
chooses JAX unless `KERAS_BACKEND` says otherwise: `keras_lstm.startup.choose_keras_backend`);
the tests marked `tensorflow` run in a second call with `KERAS_BACKEND=tensorflow`. The tests
here start fresh processes on either backend.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

TINY = {
    "seed": 3,
    "data": {"path": "data.csv", "targets": ["y"], "lookback": 8},
    "model": {"units": [8]},
    "training": {"epochs": 3, "cv_splits": 2, "batch_size": 32},
}


def test_the_suite_runs_on_the_backend_users_get():
    import keras
    from conftest import REQUESTED_BACKEND

    # without KERAS_BACKEND, what `keras-lstm` and a user's script train on: JAX
    assert keras.backend.backend() == (REQUESTED_BACKEND or "jax")


@pytest.mark.tensorflow
def test_tensorflow_marked_tests_run_on_tensorflow():
    import keras
    import tensorflow as tf

    assert keras.backend.backend() == "tensorflow"
    assert len(tf.config.list_logical_devices("CPU")) == 2  # for MirroredStrategy's tests


def _python(script: str, cwd, backend: str | None, timeout=600) -> dict:
    """Run `script` in a fresh Python; returns the JSON it prints last."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if backend:
        env["KERAS_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def project(tmp_path, sine_frame):
    sine_frame[["y", "x"]].to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


TRAIN = """
    import json, keras
    from keras_lstm.config import load_config
    from keras_lstm.training import fit
    bundle = fit(load_config("config.yaml"), verbose=0)
    bundle.save("bundle-{name}")
    frame = bundle.predict("data.csv")
    print(json.dumps({{"backend": keras.backend.backend(), "pred": frame["y"].tolist()}}))
"""

LOAD_AND_EXPORT = """
    import json, keras
    from keras_lstm.bundle import Bundle
    from tflite_export.exporter import export
    bundle = Bundle.load("bundle-{name}")
    frame = bundle.predict("data.csv")
    report = export(bundle, "float32", "model-{name}.tflite")
    print(json.dumps({{"backend": keras.backend.backend(), "pred": frame["y"].tolist(),
                       "relative_rmse": report["relative_rmse"]}}))
"""


@pytest.mark.parametrize(
    "trained_on, loaded_on",
    [
        ("jax", "tensorflow"),
        # training on TensorFlow is no longer the default: under 15 minutes, this one runs
        # with -m slow
        pytest.param("tensorflow", "jax", marks=pytest.mark.slow),
    ],
)
def test_a_bundle_trained_on_one_backend_predicts_and_exports_on_the_other(
    project, trained_on, loaded_on
):
    trained = _python(TRAIN.format(name=trained_on), project, trained_on)
    loaded = _python(LOAD_AND_EXPORT.format(name=trained_on), project, loaded_on)
    assert (trained["backend"], loaded["backend"]) == (trained_on, loaded_on)
    assert len(trained["pred"]) > 300
    np.testing.assert_allclose(loaded["pred"], trained["pred"], rtol=1e-4, atol=1e-5)
    assert loaded["relative_rmse"] < 1e-4  # the float32 file matches the model it was made from


def test_keras_lstm_trains_on_jax_when_no_backend_is_named_and_the_same_seed_repeats(project):
    script = """
        import json
        from keras_lstm.config import load_config  # before Keras: keras-lstm chooses the backend
        from keras_lstm.training import fit
        import keras
        runs = [fit(load_config("config.yaml"), verbose=0).metrics for _ in range(2)]
        other = fit(load_config("config.yaml").replace(seed=4), verbose=0).metrics
        print(json.dumps({"backend": keras.backend.backend(), "runs": runs, "other": other}))
    """
    answer = _python(script, project, backend=None)
    assert answer["backend"] == "jax"
    first, second = answer["runs"]
    assert first["test"] == second["test"]
    assert first["cv"] == second["cv"]
    assert answer["other"]["test"]["rmse"] != first["test"]["rmse"]  # the seed matters


def test_mirrored_strategy_on_jax_names_the_backend_to_use(project):
    script = """
        import json
        from keras_lstm.config import load_config
        from keras_lstm.errors import ConfigError
        from keras_lstm.training import resolve_strategy
        config = load_config("config.yaml").replace(**{"training.strategy": "mirrored"})
        try:
            resolve_strategy(config)
            print(json.dumps({"error": None}))
        except ConfigError as err:
            print(json.dumps({"error": str(err)}))
    """
    answer = _python(script, project, backend="jax")
    assert "KERAS_BACKEND=tensorflow" in answer["error"]


def test_the_compilation_cache_is_written_where_asked(project, tmp_path):
    cache = tmp_path / "xla-cache"
    script = f"""
        import json, os
        os.environ["KERAS_LSTM_COMPILATION_CACHE"] = {str(cache)!r}
        from keras_lstm.config import load_config
        from keras_lstm.training import cross_validate
        cross_validate(load_config("config.yaml"), verbose=0)
        print(json.dumps({{"files": len(os.listdir({str(cache)!r}))}}))
    """
    assert _python(script, project, backend="jax")["files"] > 0


BLOCK = """
    import json, sys
    for name in ("tensorflow", "keras", "jax", "tf_keras", "keras_tuner"):
        sys.modules[name] = None  # any import of these now raises ImportError
    from keras_lstm.cli import main
    code = main({args!r})
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax")
                    and sys.modules[m] is not None)
    print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def _blocked(args, cwd) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCK.format(args=args))],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    return {**json.loads(lines[-1]), "stdout": done.stdout, "stderr": done.stderr}


def test_cli_fast_paths_import_neither_tensorflow_nor_keras(project, tmp_path):
    from test_export import _bundle

    from tflite_export.exporter import export

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"targets": ["y"], "lookbak": 4}}))
    missing_data = tmp_path / "missing.yaml"
    missing_data.write_text(yaml.safe_dump({"data": {"path": "nope.csv", "targets": ["y"]}}))
    answer = _blocked(["train", str(bad)], project)
    assert answer["code"] == 2 and "data.lookback" in answer["stderr"]
    assert answer["loaded"] == []
    answer = _blocked(["train", str(missing_data)], project)
    assert answer["code"] == 2 and "nope.csv" in answer["stderr"]
    assert answer["loaded"] == []
    # --help exits from argparse before any command runs
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCK.format(args=["--help"]))],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "quickstart" in done.stdout

    # predicting with a .tflite file: LiteRT only
    import pandas as pd

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({name: rng.standard_normal(40) for name in ("a", "b", "c")})
    bundle, _ = _bundle("lstm", frame)
    export(bundle, "float32", tmp_path / "m.tflite")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "pred.csv"
    answer = _blocked(
        [
            "predict",
            str(tmp_path / "m.tflite"),
            "--input",
            str(tmp_path / "rows.csv"),
            "--output",
            str(out),
        ],
        project,
    )
    assert answer["code"] == 0, answer["stderr"][-2000:]
    assert answer["loaded"] == []
    assert len(pd.read_csv(out)) > 0


def test_the_block_stops_a_keras_import(project):
    # the same block makes a command that needs Keras fail, so the test above would catch one
    answer = _blocked(["train", "config.yaml"], project)
    assert answer["code"] != 0 and answer["loaded"] == []
