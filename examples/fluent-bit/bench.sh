#!/usr/bin/env bash
# Side by side in one run, on the same generated nginx access log, inside the real Fluent Bit:
#   1. tail -> Fluent Bit's out_null
#   2. tail -> our output plugin (no processor, flusher_null)
#   3. tail -> Fluent Bit's parser filter (the nginx regex) -> out_null
#   4. tail -> our output plugin (processor_regex, the same regex) -> flusher_null
# Prints, per flow, CPU seconds (user + system of the whole Fluent Bit process), MB per
# CPU-second, and CPU microseconds per record; then the two ratios the plugin is held to.
#
# Usage: examples/fluent-bit/bench.sh [LINES]   (default 2400000; needs `cargo build --release`)
# Env: FLUENT_BIT_BIN (default ../shared/tools/fluent-bit/bin/fluent-bit next to the repo).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fb=${FLUENT_BIT_BIN:-$root/../shared/tools/fluent-bit/bin/fluent-bit}
plugin=$root/target/release/libpluginrt_fbout.so
lines=${1:-2400000}
[ -x "$fb" ] || { echo "bench.sh: no Fluent Bit at $fb (set FLUENT_BIT_BIN)" >&2; exit 2; }
[ -f "$plugin" ] || { echo "bench.sh: build first: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/access.log" "$lines" <<'PY'
import random, sys
random.seed(7)
paths = ["/api/v1/users/%d/orders", "/static/js/app.%08x.js", "/index.html", "/search?q=%d", "/img/%d.png", "/health"]
agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "curl/8.5.0", "Go-http-client/1.1", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        p = random.choice(paths)
        p = p % random.randrange(1 << 31) if "%" in p else p
        f.write('%d.%d.%d.%d - - [01/Dec/2026:12:%02d:%02d +0000] "%s %s HTTP/1.1" %d %d "https://example.com/ref/%d" "%s"\n' % (
            random.randrange(1, 224), random.randrange(256), random.randrange(256), random.randrange(1, 255),
            (i // 60000) % 60, (i // 1000) % 60, random.choice(["GET"] * 8 + ["POST", "PUT"]), p,
            random.choice([200] * 9 + [404, 500]), random.randrange(100000), random.randrange(1000),
            random.choice(agents)))
PY
mb=$(python3 -c "import os,sys; print(os.path.getsize(sys.argv[1]) / 1e6)" "$work/access.log")

regex_go='^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)"$'
regex_fb='^(?<remote_addr>\S+) - (?<remote_user>\S+) \[(?<time_local>[^\]]+)\] "(?<method>\S+) (?<url>\S+) (?<protocol>\S+)" (?<status>\d+) (?<body_bytes_sent>\d+) "(?<http_referer>[^"]*)" "(?<http_user_agent>[^"]*)"$'
printf '[PARSER]\n    Name nginx_bench\n    Format regex\n    Regex %s\n' "$regex_fb" > "$work/parsers.conf"
python3 - "$work" "$regex_go" <<'PY'
import json, sys
work, regex = sys.argv[1], sys.argv[2]
keys = ["remote_addr", "remote_user", "time_local", "method", "url", "protocol", "status",
        "body_bytes_sent", "http_referer", "http_user_agent"]
json.dump({"flushers": [{"type": "flusher_null"}]}, open(work + "/plain.json", "w"))
json.dump({"processors": [{"type": "processor_regex", "detail": {"SourceKey": "log", "Regex": regex, "Keys": keys}}],
           "flushers": [{"type": "flusher_null"}]}, open(work + "/regex.json", "w"))
PY

service="[SERVICE]\n    Flush 0.2\n    Grace 30\n    Log_Level info\n    Parsers_File $work/parsers.conf\n"
input="[INPUT]\n    Name tail\n    Path $work/access.log\n    Read_from_Head true\n    Exit_On_Eof true\n    Buffer_Chunk_Size 256k\n    Buffer_Max_Size 256k\n    Tag bench\n"
ours() { printf "[OUTPUT]\n    Name pluginrt\n    Match bench\n    Retry_Limit False\n    pipeline %s\n    checkpoint_dir %s\n" "$1" "$work/ckpt-$2"; }
conf_null="$service$input[OUTPUT]\n    Name null\n    Match bench\n"
conf_ours="$service$input$(ours "$work/plain.json" plain)"
conf_parser="$service$input[FILTER]\n    Name parser\n    Match bench\n    Key_Name log\n    Parser nginx_bench\n[OUTPUT]\n    Name null\n    Match bench\n"
conf_regex="$service$input$(ours "$work/regex.json" regex)"

run() { # name conf -> "cpu_s"
    printf "%b" "$2" > "$work/$1.conf"
    rm -rf "$work/ckpt-"*
    /usr/bin/time -f "%U %S %e" -o "$work/$1.time" "$fb" -e "$plugin" -c "$work/$1.conf" > "$work/$1.log" 2>&1
    awk '{printf "%.3f", $1 + $2}' "$work/$1.time"
}
wall() { awk '{printf "%.2f", $3}' "$work/$1.time"; }
report() { # name cpu flow
    python3 -c "import sys; n,c,mb,l,w=sys.argv[1],float(sys.argv[2]),float(sys.argv[3]),int(sys.argv[4]),sys.argv[5]; print(f'{n:40s} cpu {c:7.3f} s  wall {w:>6s} s  {mb/c:8.1f} MB/cpu-s  {c/l*1e6:6.2f} cpu-us/record')" "$1" "$2" "$mb" "$lines" "$(wall "$3")"
}
echo "input: $lines nginx lines, $(printf %.1f "$mb") MB; Fluent Bit $("$fb" --version | head -1)"
c_null=$(run null "$conf_null");       report "tail -> out_null" "$c_null" null
c_ours=$(run ours "$conf_ours");       report "tail -> pluginrt (flusher_null)" "$c_ours" ours
c_parser=$(run parser "$conf_parser"); report "tail -> parser filter -> out_null" "$c_parser" parser
c_regex=$(run regex "$conf_regex");    report "tail -> pluginrt (regex, flusher_null)" "$c_regex" regex
for f in ours regex; do
    grep -o "received=[0-9]* delivered=[0-9]*" "$work/$f.log" | tail -1 | sed "s/^/$f: /"
done
python3 - "$c_null" "$c_ours" "$c_parser" "$c_regex" "$lines" <<'PY'
import sys
null, ours, parser, regex, n = map(float, sys.argv[1:])
print(f"our output path vs Fluent Bit's: {ours / null:.2f}x the CPU (target <= 1.50x)")
print(f"nginx regex, ours vs Fluent Bit's parser filter: {parser / regex:.2f}x the MB per CPU-second (target >= 2x)")
PY

# 5. our input plugin (service_mock, as fast as it goes) -> Fluent Bit's out_null: time, CPU
#    seconds and peak RSS of the Fluent Bit process until out_null has processed every record
#    (read from Fluent Bit's HTTP monitoring endpoint).
in_plugin=$root/target/release/libpluginrt_fbin.so
records=${INPUT_RECORDS:-1000000}
python3 - "$work/mock.json" "$records" <<'PY'
import json, sys
json.dump({"inputs": [{"type": "service_mock", "detail": {
    "Fields": {"message": "127.0.0.1 - - [01/Dec/2026:12:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 512"},
    "MaxLogCount": int(sys.argv[2]), "LogsPerSecond": 100000000}}]}, open(sys.argv[1], "w"))
PY
port=$((20000 + RANDOM % 20000))
printf "[SERVICE]\n    Flush 0.2\n    Grace 2\n    Log_Level warn\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port %s\n[INPUT]\n    Name pluginrt_input\n    Tag mock\n    pipeline %s\n    checkpoint_dir %s\n    collect_max_bytes 67108864\n    buffer_max_bytes 134217728\n[OUTPUT]\n    Name null\n    Match mock\n" \
    "$port" "$work/mock.json" "$work/ckpt-in" > "$work/input.conf"
"$fb" -e "$in_plugin" -c "$work/input.conf" > "$work/input.log" 2>&1 &
fbpid=$!
python3 - "$fbpid" "$port" "$records" <<'PY'
import json, os, sys, time, urllib.request
pid, port, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tick = os.sysconf("SC_CLK_TCK")
start, done = time.time(), 0
while time.time() - start < 120:
    try:
        m = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/metrics", timeout=1))
        done = sum(o.get("proc_records", 0) for o in m.get("output", {}).values())
    except Exception:
        pass
    if done >= want:
        break
    time.sleep(0.05)
wall = time.time() - start
f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
cpu = (int(f[11]) + int(f[12])) / tick
hwm = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1]
print(f"{'pluginrt_input (service_mock) -> out_null':36s} {done} records in {wall:.2f} s wall, cpu {cpu:.2f} s, {done / cpu:,.0f} records per CPU-second, peak RSS {int(hwm) / 1024:.1f} MiB")
PY
kill -TERM "$fbpid" 2>/dev/null || true
wait "$fbpid" 2>/dev/null || true
