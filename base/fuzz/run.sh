#!/usr/bin/env bash
# Fuzzes the boundary parsers and the processors of libPluginBase for a bounded time (CI and
# by hand).
#
#   bash base/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# cargo-fuzz (pinned below) drives libFuzzer with AddressSanitizer. Both need nightly-only
# rustc flags (-Zsanitizer, -Cpasses=sancov-module); on the stable toolchain they are unlocked
# with RUSTC_BOOTSTRAP=1, which is set for the fuzz build only.
#
# Each target starts from the curated seeds in base/fuzz/corpus/<target>/ (copied to a scratch
# corpus under target/, so the tree stays clean) and runs for SECONDS_PER_TARGET. A crash, panic,
# failed property, leak, OOM or timeout makes the script exit 1 after all targets ran; the
# reproducer is in base/fuzz/artifacts/<target>/ and its path and replay command are printed.
set -euo pipefail

SECS=${1:-60}
shift || true
case $SECS in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac

FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$FUZZ_DIR/../.." && pwd)
CARGO_FUZZ_VERSION=0.13.2
TOOLS="$ROOT/target/tools"
TARGET_DIR="$ROOT/target/fuzz"
SCRATCH="$ROOT/target/fuzz-corpus"
ALL_TARGETS=(config_parse protobuf_decode tags_parse processors msgpack_records pipeline_event_group)
TARGETS=("${@:-${ALL_TARGETS[@]}}")

export PATH="$TOOLS/bin:$PATH"
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
    cargo install --locked --version "=$CARGO_FUZZ_VERSION" cargo-fuzz --root "$TOOLS"
fi
# libFuzzer itself is C++ built by libfuzzer-sys' build script.
command -v c++ >/dev/null || { echo "run.sh: needs a C++ compiler (apt-get install g++)" >&2; exit 2; }

cd "$FUZZ_DIR"
# Resolve dependencies the way the main workspace does: start from its lock file (cargo adds
# the fuzz-only crates and drops the unused ones). base/fuzz/Cargo.lock is not committed.
cp "$ROOT/Cargo.lock" Cargo.lock

export RUSTC_BOOTSTRAP=1
# -a: debug assertions on (overflow checks and debug_assert! in base count as findings).
FUZZ_FLAGS=(--target-dir "$TARGET_DIR" -a)

start=$(date +%s)
echo "== building fuzz targets (release, ASan, libFuzzer)"
cargo fuzz build "${FUZZ_FLAGS[@]}"
echo "   built in $(($(date +%s) - start)) s"

failed=()
for t in "${TARGETS[@]}"; do
    corpus="$SCRATCH/$t"
    mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$t"
    cp "$FUZZ_DIR/corpus/$t/"* "$corpus/" 2>/dev/null || true
    extra=()
    [[ -f "$FUZZ_DIR/$t.dict" ]] && extra+=("-dict=$FUZZ_DIR/$t.dict")
    before=$(ls "$FUZZ_DIR/artifacts/$t" | wc -l)
    echo "== fuzzing $t for $SECS s"
    log="$SCRATCH/$t.log"
    t0=$(date +%s)
    # -timeout: one input running 10 s is a hang; -rss_limit_mb: libFuzzer's OOM check.
    # -seed: fixed in CI (FUZZ_SEED, default 1) so a run can be reproduced; set FUZZ_SEED=0
    # for a random seed when fuzzing by hand.
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "$corpus" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -seed="${FUZZ_SEED:-1}" \
        "${extra[@]}" >"$log" 2>&1; then
        echo "   ok: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs," \
            "corpus $(ls "$corpus" | wc -l) inputs, $(($(date +%s) - t0)) s"
    else
        failed+=("$t")
        echo "!! $t FAILED after $(($(date +%s) - t0)) s; last lines of $log:"
        grep -E "panicked at|^ERROR: |^SUMMARY: |^==[0-9]+==ERROR" -A3 "$log" | head -20 || true
        grep -vE '^#[0-9]+|^\s+[0-9]+: |^\s+at ' "$log" | tail -25 || true
        new=$(ls -t "$FUZZ_DIR/artifacts/$t" | head -n $(($(ls "$FUZZ_DIR/artifacts/$t" | wc -l) - before)))
        for a in $new; do
            echo "!! reproducer: base/fuzz/artifacts/$t/$a"
            echo "!!   replay:   (cd base/fuzz && RUSTC_BOOTSTRAP=1 PATH=$TOOLS/bin:\$PATH cargo fuzz run --target-dir $TARGET_DIR -a $t artifacts/$t/$a)"
            echo "!!   bytes:    $(head -c 512 "$FUZZ_DIR/artifacts/$t/$a" | od -An -c | tr -s ' ' | tr -d '\n' | head -c 1200)"
        done
    fi
done

echo "== fuzzing done in $(($(date +%s) - start)) s (build + ${#TARGETS[@]} x $SECS s)"
if ((${#failed[@]})); then
    echo "fuzz: FAILED targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]}"
