#!/usr/bin/env bash
# Benchmark sse-gateway against nginx+nchan on this machine, side by side, and write the results
# table of docs/benchmarks.md.
#
# Usage: scripts/bench.sh [--quick] [--runs N] [--scenarios "1 2 3 4 5 6"] [--no-nchan]
#                         [--no-write]
#   --quick      every scenario once, at reduced size (a smoke check, under 2 minutes; its
#                table goes next to the JSON results, not into docs/benchmarks.md)
#   --runs N     runs per scenario and server (default 3; the table shows medians)
#   --scenarios  which scenarios to run (default: all)
#   --no-nchan   measure sse-gateway only
#   --no-write   leave docs/benchmarks.md alone (results are still kept as JSON)
#   --into DIR   add the runs to an earlier results directory (e.g. to redo one scenario) and
#                make the table from all of its runs
#
# Environment: SERVER_CPU (default 0) and CLIENT_CPU (default 1) are the cores for the server and
# the load tool; GW_PORT, NCHAN_PORT; AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f);
# GATEWAY_BIN: measure this sse-gateway binary instead of building this checkout's (GATEWAY_REV
# then says what it is, for the table);
# QUIET_BUDGET (default 600): seconds the script may spend in all, before runs, waiting for other
# processes to leave the CPUs alone (a build running next to a benchmark ruins it; the JSON's
# cpu_pct.server_waiting shows how much a run was disturbed); DISTURBED_PCT (default 10) and
# DISTURBED_RETRIES (default 2): a run during which something else kept the server's or the
# tool's core busier than DISTURBED_PCT percent is run again, up to DISTURBED_RETRIES times.
#
# Every server is started fresh for every run (so memory figures start clean) and stopped after
# it; gateway and nchan runs alternate so that background noise hits both alike. All traffic
# stays on 127.0.0.0/8. One JSON result per run is kept in target/bench-results/<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

QUICK=0
RUNS=3
SCENARIOS="1 2 3 4 5 6"
WITH_NCHAN=1
WRITE=1
INTO=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --runs) RUNS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --no-nchan) WITH_NCHAN=0 ;;
        --no-write) WRITE=0 ;;
        --into) INTO=$2; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
GW_PORT=${GW_PORT:-28080}
NCHAN_PORT=${NCHAN_PORT:-28081}
GW_PUBLISH_PORT=${GW_PUBLISH_PORT:-28082}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
GATEWAY=${GATEWAY_BIN:-$ROOT/target/release/sse-gateway}
GATEWAY_REV=${GATEWAY_REV:-$(if [[ -n ${GATEWAY_BIN:-} ]]; then echo "$GATEWAY_BIN"; else
    git rev-parse --short HEAD 2>/dev/null || echo '?'; fi)}
LOAD=$ROOT/target/release/sse-load

# Scenario sizes: subscribers and events (per publish channel).
if [[ $QUICK == 1 ]]; then
    RUNS=1
    S1=200 S1E=50 S2=1000 S2E=20 S3=1000 S3E=100 S4=800 S4E=10 S5=2000 S6=1000 S6E=100 S6BARE=500 HOLD=1
else
    S1=1000 S1E=200 S2=10000 S2E=100 S3=10000 S3E=500 S4=4000 S4E=50 S5=19000 S6=10000 S6E=500 S6BARE=5000 HOLD=5
fi

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

OUT=${INTO:-$ROOT/target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
WORK=$(mktemp -d)
mkdir -p "$OUT"
SERVER_PID=""
TARGET_PID=""

# Stop_server ends the server this script started, by its pid, and waits for it (bounded).
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
    TARGET_PID=""
}

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

QUIET_BUDGET=${QUIET_BUDGET:-600}
DISTURBED_PCT=${DISTURBED_PCT:-10}
DISTURBED_RETRIES=${DISTURBED_RETRIES:-2}

# Busy_pct prints how busy all CPUs were, in percent, over the next second.
busy_pct() {
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 1
    read -r -a b < <(head -n 1 /proc/stat)
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do
        total=$(( total + b[i] - a[i] ))
    done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# Wait_quiet waits until other processes leave the CPUs alone (under 10% busy over a second),
# within what is left of QUIET_BUDGET.
wait_quiet() {
    local busy
    while (( QUIET_BUDGET > 0 )); do
        busy=$(busy_pct)
        (( busy < 10 )) && return 0
        (( QUIET_BUDGET -= 1 ))
        (( QUIET_BUDGET % 30 == 0 )) && log "machine ${busy}% busy; waiting (budget ${QUIET_BUDGET}s)"
    done
    return 0
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Wait_port_free waits (at most 10 s) until nothing listens on 127.0.0.1:$1: a run must never
# measure some other process that happens to hold the port.
wait_port_free() {
    for _ in $(seq 100); do
        port_open "$1" || return 0
        sleep 0.1
    done
    log "127.0.0.1:$1 is taken by another process; set GW_PORT / NCHAN_PORT"
    return 1
}

# Wait_for_server waits (at most 10 s) until the server we started ($SERVER_PID) accepts
# connections on 127.0.0.1:$1.
wait_for_server() {
    for _ in $(seq 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "the server exited at start"
            return 1
        fi
        port_open "$1" && return 0
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$1"
    return 1
}

# Http_status prints the status code of GET $2 on 127.0.0.1:$1 (empty when nothing answers).
http_status() {
    local line=""
    {
        exec 3<>"/dev/tcp/127.0.0.1/$1" &&
            printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3 &&
            read -r -t 2 line <&3
        exec 3<&- 3>&-
    } 2>/dev/null || true
    echo "$line" | cut -d' ' -f2
}

# Wait_ready waits (at most 20 s) until the gateway's /readyz answers 200: with AMQP input, that
# is when it consumes, and an event published before then would find no queue.
wait_ready() {
    for _ in $(seq 200); do
        [[ $(http_status "$GW_PORT" /readyz) == 200 ]] && return 0
        sleep 0.1
    done
    log "the gateway did not become ready"
    return 1
}

start_gateway() {
    wait_port_free "$GW_PORT" || return 1
    RUST_LOG=info taskset -c "$SERVER_CPU" "$GATEWAY" --bind "127.0.0.1:$GW_PORT" \
        --workers 1 --hub-threads 1 "$@" >"$WORK/gateway.log" 2>&1 &
    SERVER_PID=$!
    TARGET_PID=$SERVER_PID
    wait_for_server "$GW_PORT" || { tail -n 5 "$WORK/gateway.log" >&2; return 1; }
    wait_ready || { tail -n 5 "$WORK/gateway.log" >&2; return 1; }
}

start_nchan() {
    local prefix=$WORK/nchan
    wait_port_free "$NCHAN_PORT" || return 1
    rm -rf "$prefix"
    mkdir -p "$prefix/tmp"
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$NCHAN_PORT|g" bench/nchan.conf.in \
        >"$prefix/nchan.conf"
    taskset -c "$SERVER_CPU" nginx -p "$prefix" -e "$prefix/error.log" \
        -c "$prefix/nchan.conf" >"$prefix/stdout" 2>&1 &
    SERVER_PID=$!
    wait_for_server "$NCHAN_PORT" || { tail -n 5 "$prefix/error.log" >&2; return 1; }
    for _ in $(seq 50); do
        TARGET_PID=$(pgrep -P "$SERVER_PID" | head -n 1 || true)
        [[ -n $TARGET_PID ]] && return 0
        sleep 0.1
    done
    log "nginx started no worker; see $prefix/error.log"
    return 1
}

# Run_load NAME TARGET ARGS... runs the load tool once against the running server (if any) and
# keeps its JSON result as $OUT/NAME.json.
run_load() {
    local name=$1 target=$2
    shift 2
    local port=$GW_PORT
    [[ $target == nchan ]] && port=$NCHAN_PORT
    local pid_args=()
    [[ -n $TARGET_PID ]] && pid_args=(--server-pid "$TARGET_PID")
    if taskset -c "$CLIENT_CPU" "$LOAD" --target "$target" --server "127.0.0.1:$port" \
        "${pid_args[@]}" --amqp-url "$AMQP_URL" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"; then
        log "$name: $(python3 bench/report.py --brief "$OUT/$name.json")"
    else
        log "$name failed: $(tail -n 3 "$OUT/$name.err" | tr '\n' ' ')"
        rm -f "$OUT/$name.json"
    fi
}

# Attempt NAME TARGET ARGS... starts the server with the command in START (an array), runs the
# load tool, stops the server, and does it again (at most DISTURBED_RETRIES times) while the run
# was disturbed by other work on its cores. The last attempt's result is kept.
START=()
attempt() {
    local name=$1 target=$2 try
    shift 2
    for try in $(seq 0 "$DISTURBED_RETRIES"); do
        wait_quiet
        if [[ ${#START[@]} -eq 0 ]] || "${START[@]}"; then
            run_load "$name" "$target" "$@"
        fi
        stop_server
        [[ -e $OUT/$name.json ]] || return 0
        python3 bench/report.py --disturbed "$OUT/$name.json" --threshold "$DISTURBED_PCT" \
            >"$WORK/disturbed" || return 0
        if (( try < DISTURBED_RETRIES )); then
            log "$name was disturbed ($(cat "$WORK/disturbed")); running it again"
            mv "$OUT/$name.json" "$OUT/$name.disturbed-$try.json.txt"
        else
            log "$name was disturbed ($(cat "$WORK/disturbed")); keeping it"
        fi
    done
}

# Measure_publish_bind SCENARIO ARGS... runs the scenario against a gateway that serves
# publishers on a second listener with a worker of its own (--publish-bind), when it has one.
measure_publish_bind() {
    local scenario=$1
    shift
    "$GATEWAY" --help | grep -q -- '--publish-bind' || return 0
    for run in $(seq "$RUNS"); do
        START=(start_gateway --publish-bind "127.0.0.1:$GW_PUBLISH_PORT")
        attempt "s$scenario-gateway-publish-bind-$run" gateway \
            --publish-server "127.0.0.1:$GW_PUBLISH_PORT" "$@"
    done
}

# Measure SCENARIO ARGS... runs the scenario $RUNS times against each server, alternating.
measure() {
    local scenario=$1
    shift
    for run in $(seq "$RUNS"); do
        START=(start_gateway)
        attempt "s$scenario-gateway-$run" gateway "$@"
        if [[ $WITH_NCHAN == 1 ]]; then
            START=(start_nchan)
            attempt "s$scenario-nchan-$run" nchan "$@"
        fi
    done
}

ensure_nchan() {
    [[ $WITH_NCHAN == 1 ]] || return 0
    if ! command -v nginx >/dev/null || [[ ! -e $NCHAN_MODULE ]]; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            log "installing nginx and libnginx-mod-nchan with apt-get"
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends nginx libnginx-mod-nchan; } >"$OUT/apt.log" 2>&1 || true
        fi
    fi
    if ! command -v nginx >/dev/null || [[ ! -e $NCHAN_MODULE ]]; then
        log "nchan not installed, skipped (install it with: apt-get install nginx libnginx-mod-nchan)"
        WITH_NCHAN=0
    fi
}

# Scenario 6 needs a broker, and a gateway with AMQP input for all but the bare-consumer figure.
AMQP_NOTE=""
broker_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
gateway_has_amqp() { "$GATEWAY" --help | grep -q -- '--amqp-url'; }

scenario_6() {
    if ! broker_up; then
        AMQP_NOTE="no RabbitMQ broker on 127.0.0.1:5672 (start one: rabbitmq-server -detached)"
        log "scenario 6 skipped: $AMQP_NOTE"
        return 0
    fi
    if ! gateway_has_amqp; then
        AMQP_NOTE="this sse-gateway has no AMQP input (--amqp-url) yet; only the broker was measured"
        log "scenario 6: $AMQP_NOTE"
    fi
    # Each gateway run gets queues of its own that the broker drops soon after, so that nothing
    # left in one run's queue reaches the next. The HTTP run is the gateway without a broker.
    local amqp_args=(--amqp-url "$AMQP_URL" --queue-expires 30s)
    # The broker runs unpinned on both cores: here, other work on the cores is part of the path.
    local DISTURBED_RETRIES=0
    for run in $(seq "$RUNS"); do
        if gateway_has_amqp; then
            START=(start_gateway "${amqp_args[@]}" --instance-id "sse-bench-$$-$run-burst")
            attempt "s6-gateway-amqp-$run" gateway --publish-via amqp --settle 2 \
                --subscribers "$S6" --events "$S6E" --in-flight 8 --drain-timeout 120 --max-run 240
            START=(start_gateway)
            attempt "s6-gateway-http-$run" gateway --publish-via http --settle 2 \
                --subscribers "$S6" --events "$S6E" --in-flight 8 --drain-timeout 120 --max-run 240
            START=(start_gateway "${amqp_args[@]}" --instance-id "sse-bench-$$-$run-rate")
            attempt "s6-gateway-amqp-rate-$run" gateway --publish-via amqp --settle 2 \
                --subscribers "$S1" --events "$S1E" --rate 100
        fi
        # The broker alone: the same publisher, one consumer, an exchange of its own (so that no
        # gateway queue bound to `sse` collects these messages).
        START=()
        attempt "s6-bare-amqp-$run" gateway --publish-via amqp --subscribe-via amqp \
            --exchange sse-bench-bare --subscribers 1 --events "$S6BARE" --in-flight 8
    done
}

# Main runs everything; the script is one function call so that bash has read all of it before
# it starts (editing the file during a run cannot change what the run does).
main() {
    log "building (release)"
    if [[ -n ${GATEWAY_BIN:-} ]]; then
        cargo build --release -p sse-load >&2
    else
        cargo build --release -p sse-gateway -p sse-load >&2
    fi
    ensure_nchan
    for scenario in $SCENARIOS; do
        log "scenario $scenario"
        case $scenario in
            1) measure 1 --subscribers "$S1" --events "$S1E" --rate 100 ;;
            2) measure 2 --subscribers "$S2" --events "$S2E" --rate 5 ;;
            3) measure 3 --subscribers "$S3" --events "$S3E" --in-flight 8 --drain-timeout 120 \
                --max-run 240
               measure_publish_bind 3 --subscribers "$S3" --events "$S3E" --in-flight 8 \
                --drain-timeout 120 --max-run 240 ;;
            4) measure 4 --subscribers "$S4" --channel general --rotate cats,dogs,extras,base \
                --publish-channel general,cats --events "$S4E" --rate 10 ;;
            5) measure 5 --subscribers "$S5" --events 0 --hold "$HOLD" --connect-concurrency 500 ;;
            6) scenario_6 ;;
            *) log "no scenario $scenario" ;;
        esac
    done

    local cpu mem nchan_version
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
    mem=$(free -g | awk '/^Mem:/ {print $2}')
    MACHINE="$(nproc) CPUs ($cpu), $mem GiB, Linux $(uname -r), open-file limit $(ulimit -Hn)"
    MACHINE="$MACHINE; sse-gateway $GATEWAY_REV"
    if [[ $WITH_NCHAN == 1 ]]; then
        nchan_version=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')
        MACHINE="$MACHINE; $(nginx -v 2>&1 | cut -d: -f2 | xargs) with nchan $nchan_version"
    else
        MACHINE="$MACHINE; nchan not installed, skipped"
    fi
    SIZES=$(printf '{"s1":%s,"s1e":%s,"s2":%s,"s2e":%s,"s3":%s,"s3e":%s,"s4":%s,"s4e":%s,"s5":%s,"s6":%s,"s6e":%s,"s6note":"%s"}' \
        "$S1" "$S1E" "$S2" "$S2E" "$S3" "$S3E" "$S4" "$S4E" "$S5" "$S6" "$S6E" "$AMQP_NOTE")
    NOTES=""
    [[ $QUICK == 1 ]] && NOTES="**Quick mode**: one run per figure at reduced size; a smoke check, not a result."
    DOC=docs/benchmarks.md
    [[ $WRITE == 1 && $QUICK == 0 ]] || DOC=$OUT/benchmarks.md
    python3 bench/report.py --results "${OUT#"$ROOT"/}" --doc "$DOC" --machine "$MACHINE" \
        --date "$(date -u +%Y-%m-%d)" --runs "$RUNS" --sizes "$SIZES" --notes "$NOTES"
    log "results: $OUT; table written to $DOC"
}

main; exit
