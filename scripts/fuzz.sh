#!/usr/bin/env bash
# Fuzz the parsers: each cargo-fuzz target for SECONDS (default 60), one after the other,
# on one core, growing fuzz/corpus/<target>/. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   run (all targets when none is named)
#   scripts/fuzz.sh cmin [TARGET...]        minimise the corpus before committing it (keep
#                                           fuzz/corpus/ well under 5 MB)
#   scripts/fuzz.sh seed                    (re)write the seed inputs (fuzz/seeds.py)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). The
# targets are safe Rust, so they are built without a sanitizer (`-s none`): about twice
# the executions, and a panic or a failed property is still a crash. A crash input lands
# in fuzz/artifacts/<target>/: fix it, then keep it in fuzz/regressions/<target>/ so that
# `cargo test --test fuzz_corpus` replays it forever. Exit status 1 if any target crashed.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
fuzz=(cargo +nightly fuzz)

mode=run
secs=60
case "${1:-}" in
cmin | seed) mode=$1; shift ;;
'' | *[!0-9]*) ;;
*) secs=$1; shift ;;
esac

if [ "$mode" = seed ]; then
    exec python3 seeds.py
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

"${fuzz[@]}" build -s none

if [ "$mode" = cmin ]; then
    for t in "${targets[@]}"; do
        before=$(find "corpus/$t" -type f | wc -l)
        # Edges only (no hit-count variants): every edge kept, a tenth of the bytes.
        "${fuzz[@]}" cmin -s none "$t" "corpus/$t" -- -use_counters=0 2>&1 | tail -n 1
        echo "$t: $before -> $(find "corpus/$t" -type f | wc -l) inputs"
    done
    du -sh corpus
    exit 0
fi

mkdir -p logs
failed=()
printf '%-12s %12s %8s %s\n' target executions exec/s result >logs/summary.txt
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="logs/$t.log"
    echo "== $t: ${secs}s (log: fuzz/$log)"
    result=ok
    if ! "${fuzz[@]}" run -s none "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result="CRASH: $(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1)"
        failed+=("$t")
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    printf '%-12s %12s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result" | tee -a logs/summary.txt
done
cat logs/summary.txt
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
