"""Why an int8 file can run slower than float32 in LiteRT on a desktop CPU: kernel paths.

Exports one bundle (default: the quickstart's, `quickstart-run/bundle`) in float32, int8 (the
recipe the export chooses) and int8 with every fused LSTM kept in float (`float-lstm`), then
times one window per `invoke()` in LiteRT, each file with the default delegates (XNNPACK) and
without them (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`), side by side in one run, and lists each
file's ops with their tensor types.

Run:
    .venv/bin/python benchmarks/kernel_paths.py [--bundle quickstart-run/bundle] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _interpreter(path: Path, delegates: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from keras_lstm.stderr import native_stderr_silenced

    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_stderr_silenced():
        lite = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=kind)
        lite.allocate_tensors()
    return lite


def _latency_ms(lite, window: np.ndarray, repeats: int) -> float:
    detail = lite.get_input_details()[0]
    scale, zero = detail["quantization"]
    value = window if not scale else np.round(window / scale + zero)
    value = value.astype(detail["dtype"])
    times = []
    for _ in range(repeats):
        lite.set_tensor(detail["index"], value)
        start = time.perf_counter()
        lite.invoke()
        times.append(time.perf_counter() - start)
        lite.reset_all_variables()
    return 1000 * statistics.median(times)


def _ops(lite) -> list[str]:
    """Each op with the type of its first input, e.g. `FULLY_CONNECTED(int8)`."""
    tensors = {t["index"]: t for t in lite.get_tensor_details()}
    out = []
    for op in lite._get_ops_details():
        first = [i for i in op["inputs"] if i >= 0][:1]
        dtype = tensors[first[0]]["dtype"].__name__ if first else "-"
        out.append(f"{op['op_name']}({dtype})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="quickstart-run/bundle")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()

    import keras_lstm  # noqa: F401  (chooses the backend)
    from keras_lstm.bundle import Bundle
    from tflite_export.convert import quantize
    from tflite_export.exporter import export

    bundle = Bundle.load(args.bundle)
    window = bundle.sample_windows(1, "test")[:1].astype(np.float32)
    folder = Path(tempfile.mkdtemp())
    files = {}
    for mode in ("float32", "int8"):
        report = export(bundle, mode, folder / f"{mode}.tflite")
        files[f"{mode} ({report['recipe'].split(':')[0]})"] = folder / f"{mode}.tflite"
    try:  # every LSTM in float, the rest int8
        from tflite_export.convert import calibrate
        from tflite_export.exporter import _parts
        from tflite_export.forward import build_forward, is_window_normalized

        inputs = _parts(bundle, "int8", None, None, None)
        forward, _ = build_forward(inputs.model, inputs.lookback)
        window_model = is_window_normalized(inputs.model)
        recipe = "window-float-lstm" if window_model else "float-lstm"
        content, _ = quantize(
            calibrate(forward, inputs.representative, inputs.margin), "int8", recipe, window_model
        )
        (folder / "float-lstm.tflite").write_bytes(content)
        files[f"int8 ({recipe})"] = folder / "float-lstm.tflite"
    except Exception as err:  # a recipe this model does not have
        print(f"float-lstm file not made: {err}")

    print(f"bundle {args.bundle}; one window {window.shape}; median of {args.repeats} invokes\n")
    print("| file | size KiB | XNNPACK (default) ms | no default delegates ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, path in files.items():
        with_delegate = _latency_ms(_interpreter(path, True), window, args.repeats)
        without = _latency_ms(_interpreter(path, False), window, args.repeats)
        size = path.stat().st_size / 1024
        print(f"| {name} | {size:.1f} | {with_delegate:.3f} | {without:.3f} |")
    print()
    for name, path in files.items():
        ops = _ops(_interpreter(path, False))
        counts = {op: ops.count(op) for op in dict.fromkeys(ops)}
        print(f"{name}: " + ", ".join(f"{op} x{n}" for op, n in counts.items()))


if __name__ == "__main__":
    main()
