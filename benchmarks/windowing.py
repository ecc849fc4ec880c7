"""Windowing benchmark: `WindowData` views + `WindowBatches` against the tutorial Python loop.

For a series of `--rows` rows x 12 float32 features (default 1,000,000), lookback 60, horizon 1:

* peak EXTRA memory (over the raw array) of building the windows and gathering every window
  once, batch by batch (`WindowBatches`, batch 256), against the loop `create_dataset`;
* wall time of the same (build windows + produce every training sample once);
* optionally (skip with `--no-training`) samples/s of training epochs of a 2-layer LSTM
  (32, 16) on 20,480 windows fed by `WindowBatches`, a materialised array and
  `keras.utils.timeseries_dataset_from_array`.

Every memory figure comes from a fresh subprocess (this script re-run with `--child`), so
allocator state and earlier peaks do not leak between variants. Two measures are taken, each in
its own process: tracemalloc (NumPy reports its buffers to it) and the peak resident set size
(VmHWM, reset through /proc/self/clear_refs once the raw array exists; falls back to
`ru_maxrss`). The loop would materialise (rows - 60) x 60 x 12 float32 = 2.9 GB for 1M rows, so
by default it runs on a `--loop-rows` slice and its 1M figures are extrapolated linearly (its
array size is also given analytically); `--full-loop` also times it on every row.

Times are medians of `--repeats` runs in one process, ours and the loop interleaved, so a noisy
machine slows both alike; ratios are what to compare.

Usage (from the repository root):
    .venv/bin/python benchmarks/windowing.py [--rows N] [--loop-rows N] [--full-loop]
                                             [--repeats N] [--no-training]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FEATURES = 12
LOOKBACK = 60
HORIZON = 1
BATCH = 256
TRAIN_WINDOWS = 20_480  # 80 full batches of 256: no ragged last batch to retrace on
MB = 1e6

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def create_dataset(data, lookback):
    """The tutorial loop: every window copied into a list, then into one array."""
    X, y = [], []
    for i in range(len(data) - lookback):
        X.append(data[i : i + lookback])
        y.append(data[i + lookback, 0])
    return np.array(X), np.array(y)


def make_raw(rows: int) -> np.ndarray:
    """The raw series: `(rows, 12)` float32, written straight into its one buffer."""
    return np.random.default_rng(0).standard_normal((rows, FEATURES), dtype=np.float32)


def window_count(rows: int) -> int:
    return rows - LOOKBACK - HORIZON + 1


def target_rows(rows: int) -> np.ndarray:
    """First-target rows of every window: `LOOKBACK .. rows - HORIZON`."""
    return np.arange(LOOKBACK, rows - HORIZON + 1)


# --- children: one measurement each, in a fresh process -----------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakRSS:
    """Peak resident set size above the RSS at `start()`, in bytes."""

    def start(self):
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # reset VmHWM (and ru_maxrss) to the current RSS
            self.reset = True
        except OSError:
            self.reset = False
        self.base = _status_kb("VmRSS")
        if self.base is None:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak(self) -> float:
        hwm = _status_kb("VmHWM") if self.reset else None
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return max(hwm - self.base, 0) * 1024.0


class PeakTrace:
    """Peak bytes allocated (NumPy buffers and Python objects) since `start()`."""

    def start(self):
        import tracemalloc

        gc.collect()
        tracemalloc.start()

    def peak(self) -> float:
        import tracemalloc

        return float(tracemalloc.get_traced_memory()[1])


def _iterate(batches) -> int:
    served = 0
    for index in range(len(batches)):
        x, y = batches[index]
        served += len(x)
    return served


def child_memory(variant: str, rows: int, measure: str) -> dict:
    meter = PeakRSS() if measure == "rss" else PeakTrace()
    if variant == "loop":
        raw = make_raw(rows)
        meter.start()
        X, y = create_dataset(raw, LOOKBACK)
        return {"peak": meter.peak(), "x_bytes": X.nbytes, "y_bytes": y.nbytes, "windows": len(X)}

    from keras_lstm.data import Scaler, WindowData
    from keras_lstm.training.batches import WindowBatches

    raw = make_raw(rows)
    scaler = Scaler.fit("standard", raw[: rows // 10]) if variant == "windows_scaled" else None
    meter.start()
    if scaler is not None:
        series = scaler.transform(raw)  # the pipeline's scaled float32 copy
    else:
        series = raw  # already float32 and contiguous: WindowData makes no copy of it
    data = WindowData(series, series[:, :1], LOOKBACK, HORIZON)
    build_peak = meter.peak()
    served = _iterate(WindowBatches(data, target_rows(rows), BATCH))
    assert served == window_count(rows)
    return {"peak": meter.peak(), "build_peak": build_peak, "windows": served}


def child_timing(rows: int, loop_rows: int, repeats: int, full_loop: bool, tsd_rows: int) -> dict:
    import keras

    from keras_lstm.data import WindowData
    from keras_lstm.training.batches import WindowBatches

    raw = make_raw(rows)
    wanted = target_rows(rows)
    times = {key: [] for key in ("build", "first", "gather_seq", "gather_shuffled", "loop_slice")}
    # Same samples as the loop (and a warm-up of the code paths).
    x, y = WindowData(raw[:5000], raw[:5000, :1], LOOKBACK, HORIZON).gather(target_rows(5000))
    loop_x, loop_y = create_dataset(raw[:5000], LOOKBACK)
    np.testing.assert_array_equal(x, loop_x)
    np.testing.assert_array_equal(y[:, 0, 0], loop_y)
    for repeat in range(repeats):
        gc.collect()
        start = time.perf_counter()  # time to the first batch: windows, batches, batch 0
        WindowBatches(WindowData(raw, raw[:, :1], LOOKBACK, HORIZON), wanted, BATCH)[0]
        times["first"].append(time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        data = WindowData(raw, raw[:, :1], LOOKBACK, HORIZON)
        built = time.perf_counter()
        _iterate(WindowBatches(data, wanted, BATCH))
        gathered = time.perf_counter()
        _iterate(WindowBatches(data, wanted, BATCH, shuffle=True, seed=repeat))
        shuffled = time.perf_counter()
        times["build"].append(built - start)
        times["gather_seq"].append(gathered - built)
        times["gather_shuffled"].append(shuffled - gathered)
        del data
        gc.collect()
        start = time.perf_counter()
        X, y = create_dataset(raw[:loop_rows], LOOKBACK)
        times["loop_slice"].append(time.perf_counter() - start)
        del X, y
    result = {key: statistics.median(values) for key, values in times.items()}
    result["all"] = times

    # Keras' own windowing, iterated as training would (slice: it is slow, see BENCHMARKS.md).
    gc.collect()
    start = time.perf_counter()
    dataset = keras.utils.timeseries_dataset_from_array(
        raw[: tsd_rows - HORIZON],
        raw[LOOKBACK:tsd_rows, 0],
        sequence_length=LOOKBACK,
        batch_size=BATCH,
    )
    served = sum(int(x.shape[0]) for x, _ in dataset)
    result["tsd_slice"] = time.perf_counter() - start
    assert served == window_count(tsd_rows), served

    if full_loop:
        gc.collect()
        start = time.perf_counter()
        X, y = create_dataset(raw, LOOKBACK)
        result["loop_full"] = time.perf_counter() - start
        del X, y
    return result


def child_training(rows: int, rounds: int) -> dict:
    import keras

    from keras_lstm.config import ModelConfig
    from keras_lstm.data import WindowData
    from keras_lstm.factory import build_model
    from keras_lstm.training.batches import WindowBatches

    raw = make_raw(rows)
    data = WindowData(raw, raw[:, :1], LOOKBACK, HORIZON)

    def feed(kind: str, windows: int):
        wanted = target_rows(LOOKBACK + windows + HORIZON - 1)
        if kind == "WindowBatches":
            return {"x": WindowBatches(data, wanted, BATCH, shuffle=True, seed=0)}
        if kind == "materialised array":
            x, y = data.gather(wanted)
            return {"x": x, "y": y, "batch_size": BATCH, "shuffle": True}
        stop = wanted[-1] + HORIZON  # timeseries_dataset_from_array
        dataset = keras.utils.timeseries_dataset_from_array(
            raw[: stop - HORIZON],
            raw[LOOKBACK:stop, :1].reshape(-1, HORIZON, 1),
            sequence_length=LOOKBACK,
            batch_size=BATCH,
            shuffle=True,
            seed=0,
        )
        return {"x": dataset}

    kinds = ("WindowBatches", "materialised array", "timeseries_dataset_from_array")
    models, fit_args, rates = {}, {}, {kind: [] for kind in kinds}
    for kind in kinds:
        keras.utils.set_random_seed(0)
        models[kind] = build_model(ModelConfig(units=(32, 16)), (LOOKBACK, FEATURES), (HORIZON, 1))
        models[kind].fit(epochs=1, verbose=0, **feed(kind, 2 * BATCH))  # trace the train step
        fit_args[kind] = feed(kind, TRAIN_WINDOWS)
    for _ in range(rounds):  # one epoch of each feed per round: noise hits all three alike
        for kind in kinds:
            start = time.perf_counter()
            models[kind].fit(epochs=1, verbose=0, **fit_args[kind])
            rates[kind].append(TRAIN_WINDOWS / (time.perf_counter() - start))
    return {kind: sorted(values) for kind, values in rates.items()}


# --- the parent: run the children, print the tables ---------------------------------------------


def run_child(*args: str, options: list[str] = ()) -> dict:
    """Run `--child *args` in a fresh interpreter; its last stdout line is its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), *options, "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"child {args} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mb(value: float) -> str:
    return f"{value / MB:,.1f} MB" if value < 1e9 else f"{value / 1e9:,.2f} GB"


def _s(value: float) -> str:
    return f"{value * 1e6:,.0f} µs" if value < 1e-2 else f"{value:,.2f} s"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--loop-rows", type=int, default=50_000, help="slice the loop runs on")
    parser.add_argument("--tsd-rows", type=int, default=20_000, help="slice for Keras' windows")
    parser.add_argument("--full-loop", action="store_true", help="also time the loop on all rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-rounds", type=int, default=3, help="epochs timed per feed")
    parser.add_argument("--no-training", action="store_true", help="skip the LSTM throughput")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, *rest = args.child
        if kind == "memory":
            result = child_memory(rest[0], int(rest[1]), rest[2])
        elif kind == "timing":
            result = child_timing(
                args.rows, args.loop_rows, args.repeats, args.full_loop, args.tsd_rows
            )
        else:
            result = child_training(args.rows, args.train_rounds)
        print(json.dumps(result))
        return 0

    rows, loop_rows = args.rows, args.loop_rows
    raw_bytes = rows * FEATURES * 4
    windows, loop_windows = window_count(rows), window_count(loop_rows)
    scale = windows / loop_windows
    began = time.perf_counter()
    print(
        f"{rows:,} rows x {FEATURES} float32 features (raw array {_mb(raw_bytes)}), "
        f"lookback {LOOKBACK}, horizon {HORIZON}: {windows:,} windows; batch {BATCH}; "
        f"loop measured on {loop_rows:,} rows, x{scale:.1f} to {rows:,}.\n",
        flush=True,
    )

    # Memory: each variant x each measure in its own fresh process.
    memory = {}
    for variant, n in (("windows", rows), ("windows_scaled", rows), ("loop", loop_rows)):
        for measure in ("trace", "rss"):
            memory[variant, measure] = run_child("memory", variant, str(n), measure)
    loop_array_bytes = windows * LOOKBACK * FEATURES * 4 + windows * 4  # X and y, float32
    loop_trace = memory["loop", "trace"]["peak"]
    loop_rss = memory["loop", "rss"]["peak"]
    memory_rows = []
    for variant, label in (
        ("windows", "WindowData + WindowBatches, every batch"),
        ("windows_scaled", "Scaler.transform + WindowData + WindowBatches"),
    ):
        trace, rss = memory[variant, "trace"], memory[variant, "rss"]
        memory_rows.append(
            [
                f"{label} ({rows:,} rows)",
                _mb(trace["build_peak"]),
                _mb(trace["peak"]),
                _mb(rss["peak"]),
                f"{max(trace['peak'], rss['peak']) / raw_bytes:.3f}x",
            ]
        )
    memory_rows.append(
        [
            f"loop create_dataset ({loop_rows:,} rows, measured)",
            "—",
            _mb(loop_trace),
            _mb(loop_rss),
            f"{max(loop_trace, loop_rss) / (loop_rows * FEATURES * 4):.1f}x (of its slice)",
        ]
    )
    loop_full_peak = max(loop_trace, loop_rss) * scale
    memory_rows.append(
        [
            f"loop create_dataset ({rows:,} rows, **extrapolated**)",
            "—",
            _mb(loop_trace * scale),
            _mb(loop_rss * scale),
            f"{loop_full_peak / raw_bytes:.1f}x",
        ]
    )
    memory_rows.append(
        [
            f"loop X + y arrays alone ({rows:,} rows, analytic)",
            "—",
            _mb(loop_array_bytes),
            "—",
            f"{loop_array_bytes / raw_bytes:.1f}x",
        ]
    )
    print("Peak extra memory over the raw array (fresh process per cell):\n")
    print(
        _table(
            ["variant", "tracemalloc, build", "tracemalloc, all", "peak RSS, all", "x raw array"],
            memory_rows,
        )
    )
    print(flush=True)

    # Time: ours and the loop interleaved in one process.
    timing_args = ["--rows", str(rows), "--loop-rows", str(loop_rows), "--tsd-rows"]
    timing_args += [str(args.tsd_rows), "--repeats", str(args.repeats)]
    timing_args += ["--full-loop"] if args.full_loop else []
    timing = run_child("timing", options=timing_args)
    batches = -(-windows // BATCH)
    loop_time = timing["loop_slice"] * scale
    ours_seq = timing["build"] + timing["gather_seq"]
    ours_shuffled = timing["build"] + timing["gather_shuffled"]
    tsd_windows = window_count(args.tsd_rows)
    tsd_time = timing["tsd_slice"] * windows / tsd_windows
    time_rows = [
        [
            "WindowData + WindowBatches, in order",
            _s(timing["build"]),
            _s(timing["gather_seq"]),
            _s(ours_seq),
            f"{timing['gather_seq'] / batches * 1e6:,.0f} µs",
            f"**{loop_time / ours_seq:,.0f}x**",
        ],
        [
            "WindowData + WindowBatches, shuffled",
            _s(timing["build"]),
            _s(timing["gather_shuffled"]),
            _s(ours_shuffled),
            f"{timing['gather_shuffled'] / batches * 1e6:,.0f} µs",
            f"**{loop_time / ours_shuffled:,.0f}x**",
        ],
        [
            f"loop create_dataset ({loop_rows:,} rows, measured)",
            "—",
            "—",
            _s(timing["loop_slice"]),
            f"{timing['loop_slice'] / loop_windows * BATCH * 1e6:,.0f} µs",
            "—",
        ],
        [
            f"loop create_dataset ({rows:,} rows, **extrapolated**)",
            "—",
            "—",
            _s(loop_time),
            "—",
            "1x",
        ],
    ]
    if "loop_full" in timing:
        time_rows.append(
            [
                f"loop create_dataset ({rows:,} rows, measured, --full-loop)",
                "—",
                "—",
                _s(timing["loop_full"]),
                f"{timing['loop_full'] / windows * BATCH * 1e6:,.0f} µs",
                f"{loop_time / timing['loop_full']:.2f}x",
            ]
        )
    time_rows.append(
        [
            f"keras timeseries_dataset_from_array (from {args.tsd_rows:,} rows, extrapolated)",
            "—",
            "—",
            _s(tsd_time),
            f"{timing['tsd_slice'] / (-(-tsd_windows // BATCH)) * 1e6:,.0f} µs",
            f"{loop_time / tsd_time:.2f}x",
        ]
    )
    first = timing["first"]
    print(
        f"Time to the first batch: ours {_s(first)} (WindowData + WindowBatches + batch 0) "
        f"against {_s(loop_time)} for the loop, which must finish before training starts "
        f"({loop_time / first:,.0f}x).\n"
    )
    print(
        f"Wall time to build the windows and produce all {windows:,} training samples once "
        f"(median of {args.repeats}, ours and the loop interleaved in one process):\n"
    )
    print(
        _table(
            [
                "variant",
                "build",
                "gather all",
                "total",
                "per batch of 256",
                f"loop ({rows:,}) ÷ this",
            ],
            time_rows,
        )
    )
    if "loop_full" in timing:
        print(
            f"\nThe loop measured on all {rows:,} rows took {timing['loop_full'] / loop_time:.2f}x "
            f"its linear extrapolation; ours in order is {timing['loop_full'] / ours_seq:,.0f}x "
            f"and shuffled {timing['loop_full'] / ours_shuffled:,.0f}x faster than that figure."
        )
    print(flush=True)

    if not args.no_training:
        training = run_child(
            "training", options=["--rows", str(rows), "--train-rounds", str(args.train_rounds)]
        )
        base = statistics.median(training["materialised array"])
        print(
            f"Training throughput: LSTM (32, 16) -> Dense, epochs of {TRAIN_WINDOWS:,} windows, "
            f"batch {BATCH}, shuffled, after a 2-batch warm-up fit; median of "
            f"{args.train_rounds} epochs per feed, feeds taking turns:\n"
        )
        print(
            _table(
                ["fed by", "samples/s (median)", "min – max", "median vs materialised"],
                [
                    [
                        kind,
                        f"{statistics.median(rates):,.0f}",
                        f"{rates[0]:,.0f} – {rates[-1]:,.0f}",
                        f"{statistics.median(rates) / base:.2f}x",
                    ]
                    for kind, rates in training.items()
                ],
            )
        )
        print(flush=True)

    worst_windows = max(memory["windows", m]["peak"] for m in ("trace", "rss"))
    worst_scaled = max(memory["windows_scaled", m]["peak"] for m in ("trace", "rss"))
    goals = [
        (
            "windowing adds <= 10% of the raw array (series already scaled float32)",
            worst_windows <= 0.10 * raw_bytes,
            f"{worst_windows / raw_bytes:.3f}x",
        ),
        (
            "windowing incl. the scaled float32 copy adds <= 1.1x the raw array",
            worst_scaled <= 1.10 * raw_bytes,
            f"{worst_scaled / raw_bytes:.3f}x",
        ),
        (
            ">= 100x faster than the loop (build + every sample once, in order)",
            loop_time / ours_seq >= 100,
            f"{loop_time / ours_seq:,.0f}x",
        ),
        (
            ">= 100x faster than the loop (build + every sample once, shuffled)",
            loop_time / ours_shuffled >= 100,
            f"{loop_time / ours_shuffled:,.0f}x",
        ),
    ]
    print("Goals:")
    for text, met, figure in goals:
        print(f"- {'MET' if met else 'NOT MET'}: {text} ({figure})")
    print(f"\n(benchmark took {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
