#!/usr/bin/env bash
# Runs a local 3-node dittonode cluster in the foreground (make testnet).
# Node 1 bootstraps, nodes 2 and 3 join it with the same cluster secret.
# Data and logs live in a temporary directory; Ctrl-C stops all three and
# removes it (KEEP=1 keeps it).
#
#   scripts/testnet.sh [path/to/dittonode]
#   HTTP_PORT=8081 P2P_PORT=4101 DITTONODE_CLUSTER_SECRET=... scripts/testnet.sh
set -euo pipefail

bin=${1:-bin/dittonode}
http_port=${HTTP_PORT:-8081}
p2p_port=${P2P_PORT:-4101}
secret=${DITTONODE_CLUSTER_SECRET:-testnet-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
dir=$(mktemp -d "${TMPDIR:-/tmp}/dittonode-testnet.XXXXXX")
pids=()

stop() {
	trap - EXIT INT TERM
	echo
	echo "stopping the nodes..."
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait || true
	if [ "${KEEP:-0}" = 1 ]; then
		echo "data and logs kept in $dir"
	else
		rm -rf "$dir"
	fi
}
trap stop EXIT INT TERM

# start I [ARGS...] starts node I in the background.
start() {
	local i=$1
	shift
	local hp=$((http_port + i - 1)) pp=$((p2p_port + i - 1))
	DITTONODE_CLUSTER_SECRET=$secret "$bin" run --dev --data "$dir/n$i" --node-name "n$i" \
		--http "127.0.0.1:$hp" --mqtt "127.0.0.1:$((1882 + i))" --no-mdns \
		--p2p "/ip4/127.0.0.1/tcp/$pp" --p2p "/ip4/127.0.0.1/udp/$pp/quic-v1" "$@" \
		>"$dir/n$i.log" 2>&1 &
	pids+=($!)
}

# cluster I prints GET /cluster of node I (empty until it answers).
cluster() {
	curl -sf -u ditto:ditto "http://127.0.0.1:$((http_port + $1 - 1))/cluster" 2>/dev/null || true
}

await() {
	local i=$1
	for _ in $(seq 1 100); do
		if [ -n "$(cluster "$i")" ]; then return 0; fi
		if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
			echo "node $i exited; its log:" >&2
			cat "$dir/n$i.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "node $i did not answer within 10 s; see $dir/n$i.log" >&2
	exit 1
}

start 1
await 1
id=$(cluster 1 | grep -o '"id":"[^"]*"' | head -n 1 | cut -d '"' -f 4)
join="/ip4/127.0.0.1/tcp/$p2p_port/p2p/$id"
start 2 --join "$join"
start 3 --join "$join"
await 2
await 3

echo "3-node dittonode cluster (user ditto, password ditto; logs in $dir):"
for i in 1 2 3; do
	echo "  node $i  http://127.0.0.1:$((http_port + i - 1))  mqtt 127.0.0.1:$((1882 + i))"
done
echo "try:  curl -u ditto:ditto http://127.0.0.1:$http_port/cluster"
echo "      curl -u ditto:ditto -X PUT -H 'Content-Type: application/json' -d '{\"attributes\":{\"a\":1}}' http://127.0.0.1:$http_port/api/2/things/org.example:t1"
echo "      curl -u ditto:ditto http://127.0.0.1:$((http_port + 2))/api/2/things/org.example:t1"
echo "Ctrl-C stops all three."
wait
