#!/usr/bin/env bash
# MQTT benchmarks on this machine (loopback only), the embedded broker and
# Debian's mosquitto side by side in one run with the same load tool
# (bin/mqttload, paho.golang MQTT 5) and the same in-flight settings:
#   1. raw QoS 1 point-to-point throughput, both brokers
#   2. QoS 0 at a fixed rate with subscribers that keep up: sent vs received
#   3. device twin modifies: Ditto Protocol over QoS 1 from DEVICES devices
#      (PUBACK after commit), committed modifies/s
#   4. resident memory of a fresh node with IDLE idle device connections
# Usage: scripts/bench-mqtt.sh [duration]   (env: PAIRS, INFLIGHT, DEVICES, IDLE, QOS0_RATE)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
PAIRS=${PAIRS:-16}
INFLIGHT=${INFLIGHT:-64}
DEVICES=${DEVICES:-100}
IDLE=${IDLE:-10000}
QOS0_RATE=${QOS0_RATE:-5000}
HTTP_PORT=${HTTP_PORT:-18090}
MQTT_PORT=${MQTT_PORT:-18893}
MOSQ_PORT=${MOSQ_PORT:-18894}
BIN=bin
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
DATA=$(mktemp -d /tmp/dittonode-bench-mqtt.XXXXXX)
NODE=""; MOSQ=""
trap 'kill $NODE $MOSQ 2>/dev/null || true; rm -rf "$DATA"' EXIT

cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
start_node() {
	rm -rf "$DATA/node"
	$BIN/dittonode run --dev --data "$DATA/node" --http 127.0.0.1:$HTTP_PORT --mqtt 127.0.0.1:$MQTT_PORT --log-level warn &
	NODE=$!
	until curl -sf "http://127.0.0.1:$HTTP_PORT/health" -o /dev/null; do sleep 0.05; done
	# the broker starts right after the gateway
	until (exec 3<>/dev/tcp/127.0.0.1/$MQTT_PORT) 2>/dev/null; do sleep 0.05; done
}
stop_node() { kill -TERM $NODE; wait $NODE 2>/dev/null || true; NODE=""; }

# mosquitto with the embedded broker's in-flight limit (1024 per client) and
# no persistence (its default); the embedded broker stores persistent
# sessions only, and these clients use clean sessions.
cat >"$DATA/mosquitto.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1024
max_queued_messages 10000
CONF
$MOSQUITTO -c "$DATA/mosquitto.conf" >"$DATA/mosquitto.log" 2>&1 &
MOSQ=$!
start_node
echo "== load: $(uptime)"

p2p() { # name pid args...
	local name=$1 pid=$2; shift 2
	local c0; c0=$(cpu_ticks "$pid")
	local out; out=$($BIN/mqttload p2p "$@")
	local c1; c1=$(cpu_ticks "$pid")
	echo "$name: $out broker_cpu=$(( (c1 - c0) * 10 ))ms"
}
echo "== 1. raw broker, QoS 1 point to point, $PAIRS pairs x $INFLIGHT in flight, $DURATION"
for round in 1 2; do
	p2p "mosquitto (round $round)" $MOSQ -broker 127.0.0.1:$MOSQ_PORT -pairs $PAIRS -inflight $INFLIGHT -qos 1 -duration "$DURATION"
	p2p "dittonode (round $round)" $NODE -broker 127.0.0.1:$MQTT_PORT -user ditto:ditto -pairs $PAIRS -inflight $INFLIGHT -qos 1 -duration "$DURATION"
done
echo "== 2. QoS 0 at $QOS0_RATE msg/s, subscribers keep up"
p2p "mosquitto" $MOSQ -broker 127.0.0.1:$MOSQ_PORT -pairs 4 -inflight 1 -qos 0 -rate "$QOS0_RATE" -duration "$DURATION"
p2p "dittonode" $NODE -broker 127.0.0.1:$MQTT_PORT -user ditto:ditto -pairs 4 -inflight 1 -qos 0 -rate "$QOS0_RATE" -duration "$DURATION"
echo "== 3. device twin modifies, Ditto Protocol over QoS 1, $DEVICES devices"
twin() { # namespace inflight
	local c0; c0=$(cpu_ticks $NODE)
	local out; out=$($BIN/mqttload twin -broker 127.0.0.1:$MQTT_PORT -user ditto:ditto -http http://127.0.0.1:$HTTP_PORT -devices "$DEVICES" -inflight "$2" -duration "$DURATION" -namespace "$1")
	local c1; c1=$(cpu_ticks $NODE)
	echo "$out node_cpu=$(( (c1 - c0) * 10 ))ms"
}
twin mqttload1 1
twin mqttload4 4
curl -s "http://127.0.0.1:$HTTP_PORT/health"; echo
stop_node
echo "== 4. $IDLE idle device connections on a fresh node"
start_node
$BIN/mqttload idle -broker 127.0.0.1:$MQTT_PORT -user ditto:ditto -conns "$IDLE" -pid $NODE -hold 5s
stop_node
