#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, starting from its committed
# seeds in fuzz/seeds/<target>, and prints one summary line per target. New inputs the
# fuzzer finds go to fuzz/corpus/<target> (not committed); a crash stops the run with the
# input saved under fuzz/artifacts/<target>/ and a non-zero exit.
#
#   fuzz/run.sh 10                      # every target, 10 s each (what CI does)
#   fuzz/run.sh 600 arm_models          # one target, ten minutes
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The stable compiler is told to accept
# the nightly flags cargo-fuzz passes (RUSTC_BOOTSTRAP=1); the build is release mode with
# debug assertions and overflow checks, under AddressSanitizer, in fuzz/target.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1

# Build with the workspace's own dependency versions (libfuzzer-sys is added on top).
cp Cargo.lock fuzz/Cargo.lock

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

build_started=$(date +%s)
cargo fuzz build
echo "built ${#targets[@]} targets in $(( $(date +%s) - build_started )) s"

summary=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/target/$target.log"
    started=$(date +%s)
    if ! cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    summary+=("$(printf '%-16s %10s runs %8s/s  cov %6s  %3d s' "$target" "${runs:-?}" "${speed:-?}" "${coverage:-?}" "$(( $(date +%s) - started ))")")
done
printf '%s\n' "${summary[@]}"
