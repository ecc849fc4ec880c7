"""Export to a device: train a small forecaster, export it as a full-integer (int8 in/out)
TFLite file with builtin ops only, then run it the way device code does, with nothing but the
file, its JSON report and the LiteRT interpreter.

    python examples/export_to_device.py [--epochs N] [--out DIR]

The device side (`device_predict` below) is all a phone or an edge board needs: scale the raw
readings with the report's scaler, quantize with the input's scale and zero point, reset the
interpreter's variable tensors (the fused LSTM keeps its state there between invokes), invoke,
dequantize, and unscale. On Android the reset is `interpreter.resetVariableTensors()`; see
docs/export.md for the Kotlin version.
"""

import argparse
import json

import numpy as np

import keras_lstm
from keras_lstm.quickstart import dataset_path


def device_predict(tflite_path, rows):
    """Forecasts in real units for every complete window of raw `rows` `(n, features)`."""
    from ai_edge_litert.interpreter import Interpreter

    report = json.load(open(f"{tflite_path}.json"))
    pre = report["preprocessing"]
    lookback = pre["lookback"]
    center, scale = (
        np.array(pre["feature_scaler"]["center"]),
        np.array(pre["feature_scaler"]["scale"]),
    )
    t_center, t_scale = pre["target_scaler"]["center"][0], pre["target_scaler"]["scale"][0]
    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    forecasts = []
    for end in range(lookback, len(rows) + 1):
        window = (rows[end - lookback : end] - center) / scale
        if inp["dtype"] == np.int8:
            window = np.clip(np.round(window / in_scale + in_zero), -128, 127)
        interpreter.reset_all_variables()  # every window starts from a zero LSTM state
        interpreter.set_tensor(inp["index"], window[None].astype(inp["dtype"]))
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"]).astype(np.float64)
        if out["dtype"] == np.int8:
            raw = (raw - out_zero) * out_scale
        forecasts.append(raw.ravel()[0] * t_scale + t_center)
    return np.array(forecasts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/device")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "seed": 0,
            "data": {
                "path": str(dataset_path()),
                "time_column": "date",
                "targets": ["temp_max"],
                "lookback": 14,
            },
            "model": {"units": [32, 16], "dropout": 0.1},
            "training": {"epochs": args.epochs, "cv_splits": 2},
        }
    )
    bundle = keras_lstm.fit(config, out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")

    from tflite_export import export

    path = f"{args.out}/model-int8-full.tflite"
    report = export(bundle, "int8-full", path)
    print(
        f"{path}: {report['size_bytes']} bytes, builtin ops only: {report['builtin_only']}, "
        f"relative RMSE vs Keras {report['relative_rmse']:.4f}, recipe: {report['recipe']}"
    )
    import pandas as pd

    frame = pd.read_csv(dataset_path()).tail(60)
    rows = frame[bundle.preprocessing["feature_names"]].to_numpy(np.float64)
    on_device = device_predict(path, rows)
    keras_forecasts = bundle.predict(frame.drop(columns=["weather"]))["temp_max"].to_numpy()
    gap = np.abs(on_device - keras_forecasts).max()
    print(f"device vs Keras on the last {len(on_device)} windows: max |difference| {gap:.3f} °C")
    return {"report": report, "max_abs_gap_celsius": float(gap)}


if __name__ == "__main__":
    main()
