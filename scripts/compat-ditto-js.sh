#!/usr/bin/env bash
# Eclipse Ditto JavaScript client compatibility checks: builds dittonode,
# starts a development node on a free loopback port with a fresh data dir
# and a second user, installs the pinned official client (npm ci) and runs
# compat/ditto-js against it. Prints "N passed, M failed"; exits non-zero
# on any failure. Needs node >= 20 and npm.
# Usage: scripts/compat-ditto-js.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GO=${GO:-go}
WORK=$(mktemp -d /tmp/dittonode-compat.XXXXXX)
NODE_PID=""
cleanup() {
	if [ -n "$NODE_PID" ]; then
		kill "$NODE_PID" 2>/dev/null || true
		wait "$NODE_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

command -v npm >/dev/null || { echo "compat: npm is required" >&2; exit 2; }

echo "== build"
$GO build -o "$WORK/dittonode" ./cmd/dittonode

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
	echo $((20000 + RANDOM % 20000)))
echo "== start node on 127.0.0.1:$PORT"
"$WORK/dittonode" run --dev --user alice:alicepw --data "$WORK/data" \
	--http "127.0.0.1:$PORT" --log-level warn >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 200); do
	if curl -sf -u ditto:ditto "http://127.0.0.1:$PORT/api/2/things?ids=compat:ready" -o /dev/null; then
		break
	fi
	if ! kill -0 "$NODE_PID" 2>/dev/null; then
		echo "compat: node exited:" >&2
		cat "$WORK/node.log" >&2
		exit 1
	fi
	sleep 0.05
done

echo "== npm ci"
cd "$ROOT/compat/ditto-js"
npm ci --no-audit --no-fund --loglevel=error

echo "== checks"
status=0
DITTO_DOMAIN="127.0.0.1:$PORT" DITTO_USER=ditto DITTO_PASSWORD=ditto \
	DITTO_USER2=alice DITTO_PASSWORD2=alicepw node run.js || status=$?
if [ "$status" -ne 0 ]; then
	echo "== node log (tail)"
	tail -n 30 "$WORK/node.log"
fi
exit "$status"
