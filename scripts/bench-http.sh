#!/usr/bin/env bash
# HTTP benchmarks of a real single node on this machine (loopback only):
# 100k Ditto benchmark things, durable property writes and thing reads with
# 64 clients, a hello-world net/http baseline in the same run, resident
# memory with 100k things, and restart time until the first successful read.
# Usage: scripts/bench-http.sh [things] [duration]
set -euo pipefail
cd "$(dirname "$0")/.."
THINGS=${1:-100000}
DURATION=${2:-20s}
CLIENTS=${CLIENTS:-64}
PORT=${PORT:-18080}
HELLO_PORT=${HELLO_PORT:-19090}
BIN=${BIN:-bin}
DATA=$(mktemp -d /tmp/dittonode-bench.XXXXXX)
trap 'kill $NODE $HELLO 2>/dev/null || true; rm -rf "$DATA"' EXIT
NODE=""; HELLO=""

start_node() {
	# No MQTT listener: this measures HTTP, and an idle broker costs nothing.
	$BIN/dittonode run --data "$DATA" --http 127.0.0.1:$PORT --mqtt off --user ditto:ditto --log-level warn &
	NODE=$!
}
wait_ready() { # prints seconds until the first successful thing read
	local start=$(date +%s.%N)
	until curl -sf -u ditto:ditto "http://127.0.0.1:$PORT/api/2/things/load:thing-0" -o /dev/null; do sleep 0.02; done
	echo "$(date +%s.%N) - $start" | bc
}
rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$1/status; }
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
# node_load ARGS...: runs dittoload against the node and adds the node's CPU
# time per request of the load phase to dittoload's summary.
node_load() {
	local out t0 t1
	out=$(mktemp)
	t0=$(cpu_ticks $NODE)
	$BIN/dittoload "$@" | tee "$out"
	t1=$(cpu_ticks $NODE)
	awk -v d=$((t1 - t0)) -v tck="$TCK" '/^requests/{if ($2 > 0) printf "node      %.1f µs CPU per request (whole run)\n", d * 1e6 / tck / $2}' "$out"
	rm -f "$out"
}

start_node
until curl -sf "http://127.0.0.1:$PORT/health" -o /dev/null; do sleep 0.05; done
echo "== prepare $THINGS things"
$BIN/dittoload put-property -url http://127.0.0.1:$PORT -user ditto:ditto -things "$THINGS" -clients $CLIENTS -duration 1s -prepare | grep '^prepare'
echo "== RSS with $THINGS things after creating them: $(rss_mb $NODE) MB"
echo "== durable PUT .../features/coffee-brewer/properties/brewed-coffees, $CLIENTS clients"
node_load put-property -url http://127.0.0.1:$PORT -user ditto:ditto -things "$THINGS" -clients $CLIENTS -duration "$DURATION"
echo "== RSS with $THINGS things after writes: $(rss_mb $NODE) MB"
echo "== GET /api/2/things/{id}, $CLIENTS clients"
node_load get-thing -url http://127.0.0.1:$PORT -user ditto:ditto -things "$THINGS" -clients $CLIENTS -duration "$DURATION"
$BIN/dittoload hello -listen 127.0.0.1:$HELLO_PORT & HELLO=$!
until curl -sf "http://127.0.0.1:$HELLO_PORT/" -o /dev/null; do sleep 0.05; done
echo "== hello-world net/http baseline, $CLIENTS clients"
$BIN/dittoload get -url http://127.0.0.1:$HELLO_PORT/ -clients $CLIENTS -duration "$DURATION"
kill $HELLO; wait $HELLO 2>/dev/null || true; HELLO=""
echo "== RSS with $THINGS things after the GET load (the node idle since): $(rss_mb $NODE) MB"
SD=${SEARCH_DURATION:-10s}
search() { # name filter [option]
	echo "== search $1: $2 ${3:-}"
	$BIN/dittoload search -url http://127.0.0.1:$PORT -user ditto:ditto -things "$THINGS" -clients $CLIENTS -duration "$SD" -filter "$2" ${3:+-option "$3"}
}
search eq-attribute 'eq(attributes/serialNo,"{i}")'
search eq-thingId 'eq(thingId,"load:thing-{i}")'
search and-selective-unselective 'and(eq(attributes/manufacturer,"ACME"),eq(attributes/serialNo,"{i}"))'
search like-prefix 'like(thingId,"load:thing-{i}*")'
search sorted-range 'ge(attributes/serialNo,"{i}")' 'sort(+attributes/serialNo),size(25)'
kill -TERM $NODE; wait $NODE 2>/dev/null || true
start_node
t=$(wait_ready)
echo "== restart with $THINGS things until first successful read: ${t}s"
echo "== RSS after restart: $(rss_mb $NODE) MB"
