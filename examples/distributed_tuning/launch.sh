#!/usr/bin/env bash
# Distributed tuning on one machine: a Keras Tuner chief and N workers sharing one output folder.
#
#   examples/distributed_tuning/launch.sh CONFIG OUT [WORKERS] [PORT]
#
# The launcher, and only the launcher, cleans OUT: several processes deleting it at once would
# race, so `keras-lstm tune` refuses --overwrite in distributed mode. Remove the `rm -rf` line to
# resume a stopped search instead (finished trials are kept).
#
# Across machines: put OUT on shared storage, start the chief with --chief 0.0.0.0:PORT and each
# worker with --chief CHIEF_HOST:PORT --worker ID (a unique ID per worker). A worker that dies
# mid-trial blocks the chief until a worker with the same ID comes back: restart it with its ID.
set -euo pipefail

CONFIG=${1:?usage: launch.sh CONFIG OUT [WORKERS] [PORT]}
OUT=${2:?usage: launch.sh CONFIG OUT [WORKERS] [PORT]}
WORKERS=${3:-2}
PORT=${4:-8000}
KERAS_LSTM=${KERAS_LSTM:-keras-lstm}

rm -rf "$OUT"
mkdir -p "$OUT/logs"

# The chief serves trials on 127.0.0.1:PORT and writes trials.csv, best_config.yaml and the
# refitted bundle once every trial is done.
$KERAS_LSTM tune "$CONFIG" --out "$OUT" --chief "127.0.0.1:$PORT" >"$OUT/logs/chief.log" 2>&1 &
CHIEF=$!
sleep 3

PIDS=()
for ID in $(seq 0 $((WORKERS - 1))); do
  $KERAS_LSTM tune "$CONFIG" --out "$OUT" --chief "127.0.0.1:$PORT" --worker "$ID" \
    >"$OUT/logs/worker-$ID.log" 2>&1 &
  PIDS+=($!)
done

STATUS=0
for PID in "${PIDS[@]}"; do wait "$PID" || STATUS=$?; done
wait "$CHIEF" || STATUS=$?
echo "logs in $OUT/logs; trials in $OUT/trials.csv; best config in $OUT/best_config.yaml"
exit $STATUS
