"""`keras-lstm export BUNDLE --quantize MODE [--out FILE] [--max-error X] [--format F]
[--streaming]`."""

from __future__ import annotations

from pathlib import Path

from keras_lstm.config import QUANTIZE_MODES
from keras_lstm.errors import ExportError
from tflite_export.runtime import report_path

FORMATS = ("tflite", "c-array", "onnx", "saved_model")


def add_command(commands) -> None:
    """Declare `keras-lstm export` and its arguments on the CLI's subcommands.

    Example:
        >>> import argparse
        >>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
        >>> add_command(commands)
    """
    export = commands.add_parser(
        "export",
        help="convert a bundle to TFLite (builtin ops only) with a parity report",
        description="Convert a bundle's model to a .tflite file with builtin ops only, check "
        "it against the Keras model on held-out windows and write FILE.json beside it.",
    )
    export.add_argument(
        "bundle", help="bundle folder written by `keras-lstm train` (or its run folder)"
    )
    export.add_argument(
        "--quantize",
        default="int8",
        choices=QUANTIZE_MODES,
        help="quantization mode (default: %(default)s)",
    )
    export.add_argument(
        "--out",
        help="output .tflite file (default: BUNDLE/model-MODE.tflite); with --format c-array "
        "the .cc file (default: BUNDLE/model-MODE.cc)",
    )
    export.add_argument(
        "--max-error",
        type=float,
        help="fail (writing no file) if relative RMSE against Keras exceeds this",
    )
    export.add_argument(
        "--calibration-margin",
        type=float,
        help="int8: widen each calibrated range by this fraction of its span on each side "
        "(default: the bundle's export.calibration_margin)",
    )
    export.add_argument(
        "--format",
        default="tflite",
        choices=FORMATS,
        help="tflite (default); c-array: the .tflite file plus OUT.cc and OUT.h for TFLite "
        "Micro; onnx: an ONNX file checked in onnxruntime (the keras-lstm[onnx] extra); "
        "saved_model: a SavedModel for TensorFlow Serving",
    )
    export.add_argument(
        "--streaming",
        action="store_true",
        help="a step model: one time step per invoke(), the LSTM state kept between calls "
        "(unidirectional LSTM stacks)",
    )
    export.add_argument(
        "--adaptable",
        action="store_true",
        help="a float32 file that keeps learning on the device: signatures infer, train, "
        "save, restore and reset (window-normalized forecasters of one series)",
    )
    export.set_defaults(run=run_export)


def run_export(args) -> int:
    """Export a bundle folder as `args.format` and print a one-screen summary.

    Args:
        args: parsed arguments with `.bundle`, `.quantize`, `.out`, `.max_error`, `.format`.

    Returns:
        The exit code, 0 on success.

    Raises:
        BundleError: the bundle cannot be loaded.
        ExportError: conversion or the parity check failed (no file is written).
    """
    max_error = getattr(args, "max_error", None)
    if max_error is not None and not (max_error >= 0 and max_error != float("inf")):
        raise ExportError(  # before the bundle is loaded and anything converted
            "--max-error is the largest relative RMSE against Keras to accept: a number >= 0 "
            f"such as 0.05. Received: {max_error!r}"
        )
    # TensorFlow takes seconds to import: loaded when the command runs, not for `--help`
    from keras_lstm.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    folder = bundle.directory  # the bundle folder itself, also when given its run folder
    fmt = args.format
    if fmt in ("saved_model", "onnx") and getattr(args, "streaming", False):
        raise ExportError(
            "--streaming writes a .tflite step model; use --format tflite or c-array."
        )
    runner = EXPORTERS.get(fmt)
    if runner is None:
        raise ExportError(f"Expected --format {', '.join(FORMATS)}. Received: {fmt!r}")
    if getattr(args, "adaptable", False) and fmt in ("tflite", "c-array"):
        runner = _run_adaptable
    return runner(args, bundle, folder)


def _run_onnx(args, bundle, folder: Path) -> int:
    """`export --format onnx`: the ONNX file and its onnxruntime parity."""
    from tflite_export.onnx_export import export_onnx

    out = Path(args.out or folder / "model.onnx")
    replaced = out.exists()
    report = export_onnx(bundle, out, max_error=args.max_error)
    ops = ", ".join(f"{name} x{count}" for name, count in report["ops"].items())
    print(f"{out}: {report['size_bytes']:,} bytes, ONNX opset {report['opset']}")
    print(f"  ops: {ops}")
    print(
        f"  parity vs Keras in onnxruntime on {report['validation_windows']} held-out "
        f"windows: relative RMSE {report['relative_rmse']:.4g}, max abs error "
        f"{report['max_abs_error']:.3g}"
    )
    print(
        f"  latency per window: onnxruntime {report['latency_ms_p50']:.3f} ms, compiled "
        f"Keras {report['keras_latency_ms_p50']:.3f} ms"
    )
    print(f"  report: {report_path(out)}")
    _say_replaced(out, replaced)
    return 0


def _run_saved_model(args, bundle, folder: Path) -> int:
    """`export --format saved_model`: a SavedModel for TensorFlow Serving."""
    from tflite_export.saved_model import export_saved_model

    out = Path(args.out or folder / "saved_model")
    export_saved_model(bundle, out)
    print(f"SavedModel written to {out} (signature `serving_default`: scaled windows in).")
    return 0


def _run_tflite(args, bundle, folder: Path) -> int:
    """`export --format tflite` or `c-array`: the verified `.tflite` file (and C source)."""
    from tflite_export.c_array import write_c_array
    from tflite_export.exporter import export

    mode = args.quantize
    streaming = bool(getattr(args, "streaming", False))
    suffix = "-streaming" if streaming else ""
    c_array = args.format == "c-array"
    if c_array:
        source = Path(args.out or folder / f"model-{mode}{suffix}.cc")
        if source.suffix not in (".cc", ".cpp"):
            raise ExportError(
                f"With --format c-array, --out names the C++ source file (model.cc); "
                f"received {source}."
            )
        out = source.with_suffix(".tflite")
        _refuse_to_replace_an_unnamed_file(out, source)
    else:
        out = Path(args.out or folder / f"model-{mode}{suffix}.tflite")
    replaced = out.exists()  # said after the export: a failed one replaces nothing
    report = export(
        bundle,
        mode,
        out,
        max_error=args.max_error,
        streaming=streaming,
        calibration_margin=getattr(args, "calibration_margin", None),
    )
    if c_array:
        written = write_c_array(out, source)
        print(f"C array for TFLite Micro: {', '.join(str(path) for path in written)}")
        _print_micro(report["micro"])
    _print_tflite_report(report, out, mode, streaming)
    _say_replaced(out, replaced)
    return 0


def _say_replaced(out: Path, replaced: bool) -> None:
    """After a successful export only: the earlier file of that name is gone."""
    if replaced:
        print(f"  replaced the earlier {out} and its report")


def _print_tflite_report(report: dict, out: Path, mode: str, streaming: bool) -> None:
    ops = ", ".join(f"{name} x{count}" for name, count in report["ops"].items())
    print(f"{out}: {report['size_bytes']:,} bytes, mode {mode}, builtin ops only")
    print(f"  ops: {ops}")
    print(
        f"  parity vs Keras on {report['validation_windows']} held-out windows: relative RMSE "
        f"{report['relative_rmse']:.4g}, max abs error {report['max_abs_error']:.3g}"
    )
    if report.get("runtime") == "tflite-micro":
        print(
            f"  in TFLite Micro's interpreter (int8-full there: {report['int8_relative_rmse']:.4g}"
            "); for TFLite Micro only: LiteRT's desktop interpreter cannot run it"
        )
        print(f"  report: {report_path(out)}")
        return
    if streaming:
        print(
            f"  streaming: LiteRT {report['latency_ms_p50']:.3f} ms per step "
            f"({report['window_latency_ms_p50']:.3f} ms per {report['preprocessing']['lookback']}"
            f" steps), compiled Keras {report['keras_latency_ms_p50']:.3f} ms per window"
        )
    else:
        print(
            f"  latency per window: LiteRT {report['latency_ms_p50']:.3f} ms, compiled Keras "
            f"{report['keras_latency_ms_p50']:.3f} ms"
        )
    print(f"  recipe: {report['recipe']}")
    if "latency_note" in report:
        print(f"  latency: {report['latency_note']}")
    if "kept_float" in report:
        kept = report["kept_float"]
        floats = ", ".join(f"{name} x{count}" for name, count in kept["ops"].items())
        print(
            f"  kept in float32: {floats or 'nothing'} ({kept['float_weights_share']:.0%} of the "
            f"file in float weights); calibration margin {report['calibration_margin']:g}"
        )
    print(f"  report: {report_path(out)}")


def _run_adaptable(args, bundle, folder: Path) -> int:
    """`export --adaptable`: the float32 file with train/save/restore/reset signatures."""
    from tflite_export.adaptable import export_adaptable

    if args.format != "tflite" or getattr(args, "streaming", False):
        raise ExportError("--adaptable writes a .tflite file: use it without --format/--streaming.")
    if args.quantize not in ("float32", "int8"):  # int8 is the default of --quantize
        raise ExportError(
            f"--adaptable files are float32 (the weights change on the device); drop "
            f"--quantize {args.quantize}."
        )
    out = Path(args.out or folder / "model-adaptable.tflite")
    replaced = out.exists()
    kwargs = {} if args.max_error is None else {"max_error": args.max_error}
    report = export_adaptable(bundle, out, **kwargs)
    settings = report["adaptation"]
    print(f"{out}: {report['size_bytes']:,} bytes, float32, builtin ops only, adaptable")
    print(f"  signatures: {', '.join(settings['signatures'])}")
    print(
        f"  adapts {', '.join(settings['layers'])} ({settings['state_size']} weights), SGD "
        f"learning rate {settings['learning_rate']:g}, batches of {settings['batch_size']}"
    )
    print(
        f"  parity of infer vs Keras on {report['validation_windows']} held-out windows: "
        f"relative RMSE {report['relative_rmse']:.4g}"
    )
    micro = report["micro"]
    if micro["missing_ops"]:
        print(f"  TFLite Micro lacks: {', '.join(micro['missing_ops'])}")
    print(f"  report: {report_path(out)}")
    _say_replaced(out, replaced)
    return 0


def _refuse_to_replace_an_unnamed_file(companion: Path, source: Path) -> None:
    """A C-array export writes `companion` (the .tflite file) and its report beside the `.cc`
    file the user named. They may replace an earlier C-array export's (its `.cc` is there too),
    never a `.tflite` file the user made under that name by another command."""
    existing = [p for p in (companion, report_path(companion)) if p.exists()]
    if existing and not source.exists():
        raise ExportError(
            f"{existing[0]} already exists, and --format c-array would replace it: it writes "
            f"{companion.name} and {report_path(companion).name} beside {source.name}, and "
            "does not replace a file you did not name. Choose another --out (for example "
            f"{source.with_name(source.stem + '-micro' + source.suffix)}) or move {existing[0]}."
        )


def _print_micro(micro: dict) -> None:
    print(f"  TFLite Micro ops: {', '.join(micro['resolver'])}")
    if micro["missing_ops"]:
        print(
            f"  WARNING: TFLite Micro has no kernel for {', '.join(micro['missing_ops'])}: "
            "this model will not run there."
        )
    print(f"  tensor arena: at most about {micro['arena_bytes_estimate']:,} bytes")


# each --format and the function that writes it (`--adaptable` picks `_run_adaptable`)
EXPORTERS = {
    "tflite": _run_tflite,
    "c-array": _run_tflite,
    "onnx": _run_onnx,
    "saved_model": _run_saved_model,
}
