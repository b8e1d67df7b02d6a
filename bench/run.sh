#!/usr/bin/env bash
# Keyward's throughput against the limit of its HTTP stack, from outside.
#
#   bench/run.sh            # or: ROUNDS=5 DURATION=20 CONNS=64 bench/run.sh
#
# Builds release, then for each row and round starts a fresh server pinned to
# core $SERVER_CPU, warms it up, and drives it from core $LOAD_CPU with wrk for a
# fixed duration and connection count; prints one Markdown table of medians.
# Traffic goes to 127.0.0.1 only. Needs: cargo, wrk (apt-get install -y wrk),
# taskset, curl, python3. Not part of the test suite; see docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

for tool in wrk taskset curl python3 cargo; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (wrk: apt-get install -y wrk)" >&2; exit 1; }
done

echo "bench: building release (keyward, and the hello-world limit)..." >&2
cargo build --release --locked -q -p keyward-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
keyward="$target_dir/release/keyward"
hello=$(cargo bench --locked -q -p keyward-server --bench hello --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hello" and m.get("executable"):
        print(m["executable"])')

work=$(mktemp -d)
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # url
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "bench: no answer from $1" >&2
    exit 1
}

# Starts a fresh Keyward; sets base, key_id, secret.
start_keyward() {
    local dir="$work/kw-$RANDOM$RANDOM" port
    port=$(free_port)
    mkdir -p "$dir"
    env -u KEYWARD_MASTER_KEY taskset -c "$SERVER_CPU" "$keyward" serve --listen "127.0.0.1:$port" \
        --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
    server_pid=$!
    base="http://127.0.0.1:$port"
    wait_for "$base/healthz"
    for _ in $(seq 1 100); do grep -q 'secret:' "$dir/out" && break; sleep 0.05; done
    key_id=$(awk '$1 == "id:" {print $2}' "$dir/out")
    secret=$(awk '$1 == "secret:" {print $2}' "$dir/out")
    [[ -n "$key_id" && -n "$secret" ]] || { echo "bench: no bootstrap key printed" >&2; exit 1; }
}

start_hello() {
    local port
    port=$(free_port)
    HELLO_LISTEN="127.0.0.1:$port" taskset -c "$SERVER_CPU" "$hello" >/dev/null 2>&1 &
    server_pid=$!
    base="http://127.0.0.1:$port"
    wait_for "$base/"
}

# Runs wrk against $1 (a path) with the remaining arguments; prints "req/s p50_ms p99_ms".
drive() {
    local path=$1
    shift
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" "$base$path" >/dev/null
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$base$path" >"$work/wrk.out"
    if grep -q 'Non-2xx' "$work/wrk.out"; then
        echo "bench: non-2xx answers for $path:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    python3 - "$work/wrk.out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
print(f"{rps:.0f} {p50:.3f} {p99:.3f}")
EOF
}

lua() { # method body header...: a wrk script for a request with a body
    local file="$work/req-$RANDOM.lua" method=$1 body=$2
    shift 2
    {
        echo "wrk.method = \"$method\""
        echo "wrk.body = [[$body]]"
        for h in "$@"; do echo "wrk.headers[\"${h%%: *}\"] = \"${h#*: }\""; done
    } >"$file"
    echo "$file"
}

row() { # name: one measured round of that row
    case $1 in
    hello)
        start_hello
        drive /
        ;;
    secret_me)
        start_keyward
        drive /v1/me -H "Authorization: Bearer $secret"
        ;;
    verify_secret)
        start_keyward
        local basic script
        basic=$(printf '%s:%s' "$key_id" "$secret" | base64 -w0)
        script=$(lua POST "{\"secret\":\"$secret\"}" "Content-Type: application/json" "Authorization: Basic $basic")
        drive /v1/verify -s "$script"
        ;;
    token_me)
        start_keyward
        local token
        token=$(curl -s -u "$key_id:$secret" -d grant_type=client_credentials "$base/v1/oauth/token" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
        drive /v1/me -H "Authorization: Bearer $token"
        ;;
    esac
    stop_server
}

declare -A label=(
    [hello]="hello-world axum (the limit)"
    [secret_me]='`GET /v1/me`, Bearer secret'
    [verify_secret]='`POST /v1/verify`, secret'
    [token_me]='`GET /v1/me`, access token'
)
rows=(hello secret_me verify_secret token_me)

for r in "${rows[@]}"; do
    for i in $(seq 1 "$ROUNDS"); do
        echo "bench: $r round $i/$ROUNDS" >&2
        row "$r" >>"$work/$r.results"
    done
done

echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores, server on core $SERVER_CPU, \`wrk -t1 -c$CONNS -d${DURATION}s\` on core $LOAD_CPU after ${WARMUP}s of warm-up, fresh server per run, medians of $ROUNDS"
echo
python3 - "$work" "${rows[@]}" <<EOF
import statistics, sys
work, rows = sys.argv[1], sys.argv[2:]
labels = {$(for r in "${rows[@]}"; do printf '"%s": """%s""", ' "$r" "${label[$r]}"; done)}
def med(row):
    runs = [tuple(map(float, l.split())) for l in open(f"{work}/{row}.results") if l.strip()]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))
limit = med("hello")[0]
print("| row | req/s | p50 ms | p99 ms | × limit |")
print("| --- | ---: | ---: | ---: | ---: |")
for row in rows:
    rps, p50, p99 = med(row)
    print(f"| {labels[row]} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {rps / limit:.2f} |")
EOF
