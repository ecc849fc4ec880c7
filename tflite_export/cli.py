"""`keras-lstm export BUNDLE --quantize MODE [--out FILE] [--max-error X] [--format F]`."""

from __future__ import annotations

from pathlib import Path

from keras_lstm.errors import ExportError


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
    from keras_lstm.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    fmt = getattr(args, "format", "tflite") or "tflite"
    if fmt == "saved_model":
        from tflite_export.saved_model import export_saved_model

        out = Path(args.out or Path(args.bundle) / "saved_model")
        export_saved_model(bundle, out)
        print(f"SavedModel written to {out} (signature `serving_default`: scaled windows in).")
        return 0
    if fmt != "tflite":
        raise ExportError(f"Expected --format tflite or saved_model. Received: {fmt!r}")
    from tflite_export.export import export, report_path

    mode = args.quantize
    out = Path(args.out or Path(args.bundle) / f"model-{mode}.tflite")
    report = export(bundle, mode, out, max_error=args.max_error)
    ops = ", ".join(f"{name} x{count}" for name, count in report["ops"].items())
    print(f"{out}: {report['size_bytes']:,} bytes, mode {mode}, builtin ops only")
    print(f"  ops: {ops}")
    print(
        f"  parity vs Keras on {report['validation_windows']} held-out windows: relative RMSE "
        f"{report['relative_rmse']:.4g}, max abs error {report['max_abs_error']:.3g}"
    )
    print(
        f"  latency per window: LiteRT {report['latency_ms_p50']:.3f} ms, compiled Keras "
        f"{report['keras_latency_ms_p50']:.3f} ms"
    )
    print(f"  recipe: {report['recipe']}")
    print(f"  report: {report_path(out)}")
    return 0
