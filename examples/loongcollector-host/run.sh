#!/usr/bin/env bash
# Builds examples/loongcollector-host/host.cpp (a LoongCollector 3.x-style C++ host) and runs it against
# the real libraries, (a) under AddressSanitizer + UBSan, (b) under valgrind (memcheck).
#
#   bash examples/loongcollector-host/run.sh LIBDIR MODIFY_CYCLES LOGS_PER_CYCLE TIMEOUT_SECS
#   bash examples/loongcollector-host/run.sh target/debug 20 2000 120
#
# Build the libraries first (cargo build): a library older than a source file it is built from (per the
# dep-info cargo writes next to it) is refused, unless HOST_ALLOW_STALE=1. HOST_SKIP_VALGRIND=1 skips (b);
# valgrind is installed with apt-get when missing and we are root. Valgrind gets the same work and
# HOST_VALGRIND_SLOWDOWN (default 10) times the timeout.
#
# Only host.cpp is instrumented; ASan's malloc/free interposition still covers what the libraries hand
# over (the SendPb buffers, the GetGoMetrics/GetGoAlarms/Get*Containers memory the host frees with free()).
# Leaks: LeakSanitizer stays on for the host's own allocations; allocations whose stack goes through the
# two libraries are suppressed (runtime threads still own their buffers at exit, the libraries are never
# dlclosed), listed as "Suppressions used" without failing; HOST_LSAN_STRICT=1 drops the suppressions.
# Fails (exit 1) on a non-zero exit of host or on any sanitizer/valgrind report; 2 = setup error.
set -euo pipefail

if (($# != 4)); then
    echo "usage: $0 LIBDIR MODIFY_CYCLES LOGS_PER_CYCLE TIMEOUT_SECS" >&2
    exit 2
fi
LIBDIR=$1 CYCLES=$2 PER_CYCLE=$3 TIMEOUT=$4

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$ROOT/target/loongcollector-host"
LIBS="libGoPluginAdapter.so libGoPluginBase.so"
mkdir -p "$OUT"
# shellcheck source=../sanitize-common.sh
. "$ROOT/examples/sanitize-common.sh"
# shellcheck disable=SC2086 # LIBS is a list of names
check_fresh run.sh "$ROOT" HOST_ALLOW_STALE "$LIBDIR" $LIBS

CXX=${CXX:-g++}
FLAGS=(-std=c++17 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer -I"$ROOT/include")
echo "== building host with -fsanitize=address,undefined ($CXX)"
"$CXX" "${FLAGS[@]}" -fsanitize=address,undefined -fno-sanitize-recover=all "$HERE/host.cpp" -ldl -pthread \
    -o "$OUT/host-asan"

if [[ "${HOST_LSAN_STRICT:-0}" == 1 ]]; then
    : >"$OUT/lsan.supp"
else
    cat >"$OUT/lsan.supp" <<'EOF'
# Allocations made by the Rust libraries (runtime threads alive at exit; see run.sh).
leak:libGoPluginBase.so
leak:libGoPluginAdapter.so
EOF
fi

data=$(mktemp -d /tmp/loongcollector-host.XXXXXX)
report="$OUT/asan-report"
rm -f "$report".*
trap 'rm -rf "$data"' EXIT

status=0
echo "== (a) host-asan $LIBDIR $CYCLES $PER_CYCLE $TIMEOUT"
start=$(date +%s)
# halt_on_error + exitcode: the first report ends the run with 86; log_path: reports from any thread
# land in a file we check even when the exit code is lost.
HOST_DATA_DIR="$data/asan" \
    ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:log_path=$report" \
    LSAN_OPTIONS="suppressions=$OUT/lsan.supp:print_suppressions=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$report" \
    "$OUT/host-asan" "$LIBDIR" "$CYCLES" "$PER_CYCLE" "$TIMEOUT" || status=$?
echo "   exit $status after $(($(date +%s) - start)) s"
if compgen -G "$report.*" >/dev/null; then
    cat "$report".* >&2 # suppressed library leaks only print a "Suppressions used" table
    if grep -qE "ERROR: |runtime error:" "$report".*; then
        echo "!! sanitizer report(s) above" >&2
        ((status)) || status=1
    fi
fi

if [[ "${HOST_SKIP_VALGRIND:-0}" != 1 ]]; then
    ensure_valgrind run.sh "$OUT"
    if command -v valgrind >/dev/null; then
        echo "== (b) host under valgrind (memcheck, no leak check)"
        "$CXX" "${FLAGS[@]}" "$HERE/host.cpp" -ldl -pthread -o "$OUT/host-plain"
        start=$(date +%s)
        vstatus=0
        HOST_DATA_DIR="$data/valgrind" valgrind -q --error-exitcode=99 --leak-check=no \
            --suppressions="$HERE/../c-host/valgrind.supp" --log-file="$OUT/valgrind.log" \
            "$OUT/host-plain" "$LIBDIR" "$CYCLES" "$PER_CYCLE" "$((TIMEOUT * ${HOST_VALGRIND_SLOWDOWN:-10}))" ||
            vstatus=$?
        echo "   exit $vstatus after $(($(date +%s) - start)) s"
        if [[ -s "$OUT/valgrind.log" ]]; then
            echo "!! valgrind report:" >&2
            cat "$OUT/valgrind.log" >&2
            ((vstatus)) || vstatus=1
        fi
        ((status)) || status=$vstatus
    else
        echo "run.sh: valgrind not installed (apt-get install valgrind); skipping" >&2
    fi
fi

if ((status)); then
    echo "loongcollector-host: FAILED (exit $status)" >&2
else
    echo "loongcollector-host: ok"
fi
exit "$status"
