#!/usr/bin/env bash
# Generates the C headers in include/ from the Rust sources with a pinned cbindgen:
#   include/plugin_adapter.h  from adaptor/  (adaptor/cbindgen.toml)
#   include/plugin_base.h     from base/     (base/cbindgen.toml)
#
# Usage: include/generate.sh           regenerate the checked-in headers
#        include/generate.sh --check   fail (with a diff) when a checked-in header is stale,
#                                      and compile both headers as C and C++ with -Werror
#
# The pinned cbindgen is installed into target/tools (gitignored) on first use.
set -euo pipefail

CBINDGEN_VERSION=0.29.4

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/target/tools"
cbindgen="$tools/bin/cbindgen"

check=0
case "${1-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [ ! -x "$cbindgen" ] || [ "$("$cbindgen" --version)" != "cbindgen $CBINDGEN_VERSION" ]; then
  echo "generate.sh: installing cbindgen $CBINDGEN_VERSION into $tools" >&2
  cargo install cbindgen --version "=$CBINDGEN_VERSION" --locked --root "$tools" --quiet
fi

out="$root/include"
if [ "$check" = 1 ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

# gen CRATE_DIR HEADER
gen() {
  (cd "$root" && "$cbindgen" --quiet --config "$1/cbindgen.toml" --crate "$1" \
    --output "$out/$2" "$1")
}
gen adaptor plugin_adapter.h
gen base plugin_base.h

if [ "$check" = 0 ]; then
  echo "generate.sh: wrote include/plugin_adapter.h and include/plugin_base.h"
  exit 0
fi

status=0
for header in plugin_adapter.h plugin_base.h; do
  if ! diff -u "$root/include/$header" "$out/$header"; then
    echo "generate.sh: include/$header is stale: run include/generate.sh" >&2
    status=1
  fi
done

# Both headers must compile cleanly, alone and together, from C and from C++.
printf '#include "plugin_adapter.h"\n#include "plugin_base.h"\nint main(void) { return 0; }\n' \
  > "$out/both.c"
cp "$out/both.c" "$out/both.cpp"
cc -std=c11 -Wall -Wextra -Werror -I "$root/include" -c "$out/both.c" -o "$out/both_c.o" || status=1
c++ -std=c++17 -Wall -Wextra -Werror -I "$root/include" -c "$out/both.cpp" -o "$out/both_cpp.o" \
  || status=1

if [ "$status" = 0 ]; then
  echo "generate.sh: headers are up to date and compile as C and C++"
fi
exit "$status"
