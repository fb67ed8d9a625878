#!/usr/bin/env bash
# Runs examples/c-host under AddressSanitizer + UndefinedBehaviorSanitizer (and, with
# C_HOST_VALGRIND=1, under valgrind too) against the real plugin libraries.
#
#   bash examples/c-host/asan.sh LIBDIR CONFIG.json CONFIGNAME EXPECTED_LOGS TIMEOUT_SECS
#   bash examples/c-host/asan.sh target/debug examples/c-host/demo.json demo 5000 60
#
# (CONFIGNAME may be left out: it then defaults to CONFIG's file name without `.json`.)
# Build the libraries first (`cargo build`): a library older than a source file it is built
# from (per the dep-info cargo writes next to it) is refused, unless C_HOST_ALLOW_STALE=1.
# Only main.c is instrumented; the Rust .so files are not, but ASan's malloc/free interposition
# still covers the buffers they hand to the host (SendPb's protobuf, the strings of the
# callbacks), so an out-of-bounds read by the host's protobuf walker or a use-after-free of a
# callback buffer is caught.
#
# Fails (exit 1) on a non-zero exit of c-host or on any sanitizer report.
#
# Leaks: LeakSanitizer stays on, for the host's own allocations. Allocations whose stack goes
# through libPluginBase.so or libPluginAdapter.so are suppressed: the host never dlcloses the
# libraries and exits right after HoldOn(1) while the base's runtime threads (tokio workers,
# the store's flusher) still own their buffers. Those are the libraries' business at process exit
# and are not host bugs. Suppressed leaks are still listed ("Suppressions used"), without failing;
# C_HOST_LSAN_STRICT=1 drops the suppressions (today's libraries pass that too).
set -euo pipefail

if (($# == 4)); then
    set -- "$1" "$2" "$(basename "$2" .json)" "$3" "$4"
fi
if (($# != 5)); then
    echo "usage: $0 LIBDIR CONFIG.json [CONFIGNAME] EXPECTED_LOGS TIMEOUT_SECS" >&2
    exit 2
fi
LIBDIR=$1 CONFIG=$2 NAME=$3 EXPECTED=$4 TIMEOUT=$5

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$ROOT/target/c-host-sanitize"
mkdir -p "$OUT"
# The libraries must be built from the current tree: each must be newer than every file of this
# checkout that its dep-info (LIB.d, written by cargo next to LIB.so) lists. An older build on
# purpose: C_HOST_ALLOW_STALE=1.
# shellcheck source=../sanitize-common.sh
. "$ROOT/examples/sanitize-common.sh"
check_fresh asan.sh "$ROOT" C_HOST_ALLOW_STALE "$LIBDIR" libPluginAdapter.so libPluginBase.so

CC=${CC:-gcc}
echo "== building c-host with -fsanitize=address,undefined ($CC)"
"$CC" -std=c11 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
    -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I"$ROOT/include" "$HERE/main.c" -ldl -o "$OUT/c-host-asan"

if [[ "${C_HOST_LSAN_STRICT:-0}" == 1 ]]; then
    : >"$OUT/lsan.supp" # every leak counts, the libraries' too
else
    cat >"$OUT/lsan.supp" <<'EOF'
# Allocations made by the Rust libraries (runtime threads alive at exit; see asan.sh).
leak:libPluginBase.so
leak:libPluginAdapter.so
EOF
fi

data=$(mktemp -d /tmp/c-host-asan.XXXXXX)
report="$OUT/asan-report"
rm -f "$report".*
trap 'rm -rf "$data"' EXIT

status=0
echo "== running c-host-asan $LIBDIR $CONFIG $NAME $EXPECTED $TIMEOUT"
start=$(date +%s)
# halt_on_error + exitcode: the first report ends the run with 86; log_path: reports from any
# thread land in a file we check even when the exit code is lost.
C_HOST_DATA_DIR="$data" \
    ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:log_path=$report" \
    LSAN_OPTIONS="suppressions=$OUT/lsan.supp:print_suppressions=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$report" \
    "$OUT/c-host-asan" "$LIBDIR" "$CONFIG" "$NAME" "$EXPECTED" "$TIMEOUT" || status=$?
echo "   exit $status after $(($(date +%s) - start)) s"

if compgen -G "$report.*" >/dev/null; then
    # Suppressed library leaks only print a "Suppressions used" table: shown, not a failure.
    cat "$report".* >&2
    if grep -qE "ERROR: |runtime error:" "$report".*; then
        echo "!! sanitizer report(s) above" >&2
        ((status)) || status=1
    fi
fi

if [[ "${C_HOST_VALGRIND:-0}" == 1 ]]; then
    ensure_valgrind asan.sh "$OUT"
    if command -v valgrind >/dev/null; then
        echo "== running c-host under valgrind (memcheck, no leak check)"
        "${CC}" -std=c11 -Wall -Wextra -Werror -g -O1 -I"$ROOT/include" "$HERE/main.c" -ldl \
            -o "$OUT/c-host-plain"
        rm -rf "$data"/*
        start=$(date +%s)
        vstatus=0
        # valgrind is ~20-50x slower: the expected count is the same, the timeout is stretched.
        C_HOST_DATA_DIR="$data" valgrind -q --error-exitcode=99 --leak-check=no \
            --suppressions="$HERE/valgrind.supp" --log-file="$OUT/valgrind.log" \
            "$OUT/c-host-plain" "$LIBDIR" "$CONFIG" "$NAME" "$EXPECTED" \
            "$((TIMEOUT * ${C_HOST_VALGRIND_SLOWDOWN:-10}))" || vstatus=$?
        echo "   exit $vstatus after $(($(date +%s) - start)) s"
        if [[ -s "$OUT/valgrind.log" ]]; then
            echo "!! valgrind report:" >&2
            cat "$OUT/valgrind.log" >&2
            ((vstatus)) || vstatus=1
        fi
        ((status)) || status=$vstatus
    else
        echo "asan.sh: valgrind not installed (apt-get install valgrind); skipping" >&2
    fi
fi

if ((status)); then
    echo "c-host sanitizers: FAILED (exit $status)" >&2
else
    echo "c-host sanitizers: ok"
fi
exit "$status"
