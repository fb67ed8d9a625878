# Shared by examples/c-host/asan.sh and examples/loongcollector-host/run.sh (sourced):
#   check_fresh SCRIPT ROOT ALLOW_VAR LIBDIR LIB...  exits 2 when a library is older than a source
#                                                file of ROOT its dep-info (LIB.d) lists, unless
#                                                the variable named ALLOW_VAR is 1
#   ensure_valgrind SCRIPT LOGDIR                installs valgrind with apt-get when missing and root

# LIB.so -> prints the inputs it is older than (or why it cannot tell).
stale_inputs() {
    local lib=$1 root=$2 real d inputs
    real=$(readlink -f "$lib")
    d=${real%.so}.d
    [[ -f "$d" ]] || d=${lib%.so}.d
    if [[ ! -f "$d" ]]; then
        echo "$d (missing: cannot tell what $lib was built from)"
        return
    fi
    # `out: in1 in2 ...`, spaces inside a path escaped as `\ `.
    inputs=$(sed -e 's/^[^:]*: //' -e 's/\\ /\x01/g' "$d" | tr ' ' '\n' | tr '\001' ' ' |
        { grep "^$root/" || true; } | sort -u)
    if [[ -z "$inputs" ]]; then
        echo "$d (lists no file of $root: built from another checkout?)"
        return
    fi
    while IFS= read -r f; do
        [[ -e "$f" && ! "$f" -nt "$real" ]] || echo "$f"
    done <<<"$inputs"
}

check_fresh() {
    local script=$1 root=$2 allow_var=$3 libdir=$4 lib newer
    shift 4
    for lib in "$@"; do
        [[ -f "$libdir/$lib" ]] || { echo "$script: $libdir/$lib missing (run cargo build)" >&2; exit 2; }
    done
    [[ "${!allow_var:-0}" == 1 ]] && return
    for lib in "$@"; do
        newer=$(stale_inputs "$libdir/$lib" "$root")
        if [[ -n "$newer" ]]; then
            echo "$script: $libdir/$lib is STALE: not built from the current tree; newer or missing:" >&2
            echo "$newer" | head -20 | sed 's/^/    /' >&2
            echo "$script: rebuild it (cargo build), or $allow_var=1 to use it anyway" >&2
            exit 2
        fi
    done
}

ensure_valgrind() {
    local script=$1 logdir=$2
    if ! command -v valgrind >/dev/null && ((EUID == 0)) && command -v apt-get >/dev/null; then
        echo "== installing valgrind (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } \
            >"$logdir/apt.log" 2>&1 || echo "$script: apt-get install valgrind failed (see $logdir/apt.log)" >&2
    fi
}
