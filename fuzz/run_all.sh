#!/bin/sh
# Fuzz every serialization scanner (or the TARGETS given after SECONDS) for SECONDS each
# (default 1800, the goal set for a release).
# Writes fuzz/logs/<target>.log; crash-* files land in fuzz/crashes/. Needs atheris.
set -u
SECONDS_EACH=${1:-1800}
[ $# -gt 0 ] && shift
TARGETS=${*:-pickle zip npy safetensors any gguf onnx savedmodel kerasmeta keras h5 template}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$HERE/logs" "$HERE/crashes" "$HERE/corpus"
python "$HERE/make_seeds.py" "$HERE/corpus"
for t in $TARGETS; do
    (cd "$HERE/crashes" && OMP_NUM_THREADS=1 nice -n 10 python "$HERE/fuzz_serialization.py" "$t" \
        "$HERE/corpus/$t" -max_total_time="$SECONDS_EACH" -timeout=60 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$HERE/logs/$t.log" 2>&1)
    echo "$t: exit $? ($(grep -c '' "$HERE/logs/$t.log") log lines)"
done
