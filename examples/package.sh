#!/usr/bin/env bash
# Packages the release build for shipping: stripped libraries, their debug info split off.
#
#   examples/package.sh [--no-build] [--check] [OUT_DIR]
#
# Builds `cargo build --release` (unless --no-build), then writes OUT_DIR (default
# target/dist/plugin-runtime-<version>-<arch>-linux):
#
#   libPluginAdapter.so  libPluginBase.so   stripped (objcopy --strip-all; .dynsym, the
#                                           exports, is kept), with a .gnu_debuglink to their
#                                           debug file; install both side by side
#   libGoPluginAdapter.so libGoPluginBase.so the same, under the names (and SONAMEs) OSS
#                                           LoongCollector 3.x opens
#   host-harness                            stripped; validates configs against these libraries
#   include/                                plugin_adapter.h, plugin_base.h, ABI.md
#   debug/<file>.debug                      symbols and DWARF (objcopy --only-keep-debug)
#   debug/.build-id/xx/yyyy.debug           the same files under their GNU build id (symlinks),
#                                           the layout gdb and perf look up
#   SHA256SUMS                              of the files above outside debug/
#
# and, next to OUT_DIR, OUT_DIR.tar.gz (without debug/) and OUT_DIR-debug.tar.gz (debug/ only).
# The release profile keeps debug info (perf and benchmarks need it); this script is the
# strip step, so the shipped code is exactly the code that was measured.
#
# --check then loads the packaged libraries with the packaged harness: `validate` on
# examples/pipelines/*.json and a 20-log run of examples/pipelines/quickstart.json (as an
# iLogtail host, and as a LoongCollector 3.x host on the Go-named libraries), and
# compares the exports (nm -D) of the stripped and unstripped libraries (and of the 1.x-named
# and 3.x-named copies, which must be equal).
#
# Needs objcopy (binutils), sha256sum, tar.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
check=0
out=""
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        --check) check=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "package.sh: unknown option $a" >&2; exit 2 ;;
        *) out="$a" ;;
    esac
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
name="plugin-runtime-${version}-$(uname -m)-linux"
out="${out:-target/dist/$name}"

if [ "$build" = 1 ]; then
    cargo build --release
fi
src=target/release
libs="libPluginAdapter.so libPluginBase.so libGoPluginAdapter.so libGoPluginBase.so"
for f in $libs host-harness; do
    [ -f "$src/$f" ] || { echo "package.sh: $src/$f is missing (run cargo build --release)" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out/include" "$out/debug"
for f in $libs host-harness; do
    objcopy --only-keep-debug "$src/$f" "$out/debug/$f.debug"
    chmod -x "$out/debug/$f.debug"
    objcopy --strip-all "$src/$f" "$out/$f"
    # The debuglink is looked up by file name (next to the library, or in .debug/ beside it)
    # and carries a CRC of the debug file; the build id (kept by --strip-all) is checked too.
    (cd "$out/debug" && objcopy --add-gnu-debuglink="$f.debug" "../$f")
    id=$(readelf -n "$out/$f" | sed -n 's/^ *Build ID: *//p')
    if [ -n "$id" ]; then
        mkdir -p "$out/debug/.build-id/${id:0:2}"
        ln -sf "../../$f.debug" "$out/debug/.build-id/${id:0:2}/${id:2}.debug"
    fi
done
cp include/plugin_adapter.h include/plugin_base.h include/ABI.md "$out/include/"
sums=$(cd "$out" && find . -path ./debug -prune -o -type f -print | sed 's#^\./##' | sort \
    | xargs sha256sum)
printf '%s\n' "$sums" > "$out/SHA256SUMS"

parent=$(dirname "$out")
base=$(basename "$out")
tar -C "$parent" --exclude="$base/debug" -czf "$out.tar.gz" "$base"
tar -C "$parent" -czf "$out-debug.tar.gz" "$base/debug"

echo "package.sh: $out"
(cd "$out" && ls -l $libs host-harness debug/*.debug)
ls -l "$out.tar.gz" "$out-debug.tar.gz"

if [ "$check" = 1 ]; then
    for f in $libs; do
        diff <(nm -D --defined-only "$src/$f") <(nm -D --defined-only "$out/$f") \
            || { echo "package.sh: exports of $f changed by stripping" >&2; exit 1; }
        readelf -d "$out/$f" | grep -q "Library soname: \[$f\]" \
            || { echo "package.sh: $f has no SONAME $f" >&2; exit 1; }
    done
    for f in PluginAdapter PluginBase; do
        diff <(nm -D --defined-only "$out/lib$f.so" | awk '$2 == "T" {print $3}') \
            <(nm -D --defined-only "$out/libGo$f.so" | awk '$2 == "T" {print $3}') \
            || { echo "package.sh: lib$f.so and libGo$f.so export different functions" >&2; exit 1; }
    done
    "$out/host-harness" validate examples/pipelines/*.json
    "$out/host-harness" run --quiet --summary-json --expect-logs 20 --duration 20 \
        examples/pipelines/quickstart.json | tail -1 | grep -q '"logs":20,' \
        || { echo "package.sh: the packaged libraries did not deliver the quickstart's 20 logs" >&2; exit 1; }
    "$out/host-harness" run --loongcollector --quiet --summary-json --expect-logs 20 --duration 20 \
        examples/pipelines/quickstart.json | tail -1 | grep -q '"logs":20,' \
        || { echo "package.sh: the packaged Go-named libraries did not deliver the quickstart's 20 logs to a LoongCollector-style host" >&2; exit 1; }
    echo "package.sh: check passed"
fi
