#!/usr/bin/env bash
# Mesh benchmarks on this machine, loopback only: a 3-node dittonode cluster
# and a 3-member etcd cluster (Debian's etcd-server) run side by side, and in
# the same run: durable property writes vs etcd puts of the same value size
# over the same key space with CLIENTS clients spread over the members, both
# again with 1 client through the leader and through a follower (commit
# latency), and thing reads linearizable (default) vs consistency:local next
# to etcd ranges linearizable vs serializable.
# Usage: scripts/bench-mesh.sh [things] [duration]   (defaults 10000 20s)
# Env: CLIENTS (64), TRANSPORT (tcp, quic or both; the libp2p listeners),
# BASE_PORT (21000: HTTP BASE+1..3, p2p BASE+11..13, etcd BASE+21..26),
# BIN (bin: the directory of dittonode and dittoload),
# OUT (a directory to keep every run's JSON summary and the logs),
# PPROF_BASE (unset: off; else node i serves pprof on 127.0.0.1:PPROF_BASE+i),
# PROCS (the CPU count: each dittonode member's GOMAXPROCS, as every etcd
# member runs with Go's default, one P per CPU; a node alone on a gateway
# runs two per CPU, cmd/dittonode/procs.go, which for three members on the
# same cores means 12 Ps spinning on 2 CPUs; PROCS=node keeps the node's own
# choice),
# ONLY (unset: every run; else a space-separated list of run names, e.g.
# "dn-put dn-put-1-follower", and etcd is not started when no etcd run is
# listed).
set -euo pipefail
cd "$(dirname "$0")/.."
THINGS=${1:-10000}
DURATION=${2:-20s}
CLIENTS=${CLIENTS:-64}
TRANSPORT=${TRANSPORT:-tcp}
BASE=${BASE_PORT:-21000}
BIN=${BIN:-bin} # BIN: where dittonode and dittoload are (a before/after comparison runs two builds)
USER_PW=ditto:ditto

need() { command -v "$1" >/dev/null || { echo "bench-mesh: $1 is missing" >&2; exit 1; }; }
command -v etcd >/dev/null || (apt-get update && apt-get install -y etcd-server etcd-client)
command -v jq >/dev/null || (apt-get update && apt-get install -y jq)
need etcd; need jq; need curl; need awk
[ -x $BIN/dittonode ] && [ -x $BIN/dittoload ] || make --no-print-directory build

WORK=$(mktemp -d /tmp/dittonode-mesh.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ $rc -ne 0 ] && [ $rc -ne 130 ]; then # not on interrupt
		for f in "$OUT"/*.log; do [ -f "$f" ] && { echo "== $f (tail)"; tail -n 20 "$f"; }; done
	fi
	case "$OUT" in "$WORK"/*) rm -rf "$WORK" ;; *) rm -rf "$WORK"; echo "results kept in $OUT" ;; esac
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then echo "bench-mesh: timed out waiting for $what" >&2; exit 1; fi
		sleep 0.1
	done
}

# wanted NAME: whether the run NAME is selected by ONLY.
wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
RUN_ETCD=1
[ -z "${ONLY:-}" ] || [[ " $ONLY " == *" etcd-"* ]] || RUN_ETCD=0

# ---- etcd: 3 members, default fsync, 4 GiB backend quota ----
ETCD_CLIENT=() ETCD_PEER=() CLUSTER=""
for i in 1 2 3; do
	ETCD_CLIENT+=("http://127.0.0.1:$((BASE + 19 + 2 * i))")
	ETCD_PEER+=("http://127.0.0.1:$((BASE + 20 + 2 * i))")
	CLUSTER+="${CLUSTER:+,}e$i=${ETCD_PEER[i - 1]}"
done
for i in 1 2 3; do
	[ $RUN_ETCD = 1 ] || break
	etcd --name "e$i" --data-dir "$WORK/etcd$i" \
		--listen-client-urls "${ETCD_CLIENT[i - 1]}" --advertise-client-urls "${ETCD_CLIENT[i - 1]}" \
		--listen-peer-urls "${ETCD_PEER[i - 1]}" --initial-advertise-peer-urls "${ETCD_PEER[i - 1]}" \
		--initial-cluster "$CLUSTER" --initial-cluster-token bench-mesh --initial-cluster-state new \
		--quota-backend-bytes $((4 * 1024 * 1024 * 1024)) --logger zap --log-level warn \
		>"$OUT/etcd$i.log" 2>&1 &
	PIDS+=($!)
done

# ---- dittonode: 3 nodes, node 1 bootstraps, 2 and 3 join it ----
export DITTONODE_CLUSTER_SECRET=${DITTONODE_CLUSTER_SECRET:-bench-mesh-$RANDOM$RANDOM}
NODE_HTTP=()
p2p_flags() { # port
	case $TRANSPORT in
	tcp) echo "--p2p /ip4/127.0.0.1/tcp/$1" ;;
	quic) echo "--p2p /ip4/127.0.0.1/udp/$1/quic-v1" ;;
	both) echo "--p2p /ip4/127.0.0.1/tcp/$1 --p2p /ip4/127.0.0.1/udp/$1/quic-v1" ;;
	*) echo "bench-mesh: TRANSPORT must be tcp, quic or both" >&2; exit 1 ;;
	esac
}
join_addr() { # port peer-id
	case $TRANSPORT in
	quic) echo "/ip4/127.0.0.1/udp/$1/quic-v1/p2p/$2" ;;
	*) echo "/ip4/127.0.0.1/tcp/$1/p2p/$2" ;;
	esac
}
PROCS=${PROCS:-$(nproc)}
procs_env() { [ "$PROCS" = node ] || echo "GOMAXPROCS=$PROCS"; }
start_node() { # index [join-multiaddr]
	local i=$1 flags
	flags=$(p2p_flags $((BASE + 10 + i)))
	NODE_HTTP[i - 1]="http://127.0.0.1:$((BASE + i))"
	# shellcheck disable=SC2086 # flags are words
	# shellcheck disable=SC2046 # no word or one assignment
	env DITTONODE_PPROF=${PPROF_BASE:+127.0.0.1:$((PPROF_BASE + i))} $(procs_env) \
		$BIN/dittonode run --data "$WORK/node$i" --http "127.0.0.1:$((BASE + i))" $flags --no-mdns --mqtt off \
		--node-name "n$i" --user "$USER_PW" --log-level warn ${2:+--join "$2"} >"$OUT/node$i.log" 2>&1 &
	PIDS+=($!)
}
cluster() { curl -sf -u "$USER_PW" "${NODE_HTTP[$1 - 1]}/cluster"; }
start_node 1
wait_for 30 "node 1" cluster 1
ID1=$(cluster 1 | jq -r .node.id)
start_node 2 "$(join_addr $((BASE + 11)) "$ID1")"
start_node 3 "$(join_addr $((BASE + 11)) "$ID1")"

# converged: every node sees 3 members and the same leader of every group.
converged() {
	local views="" view i
	for i in 1 2 3; do
		view=$(cluster "$i" | jq -ec 'select((.members | length) == 3 and all(.groups[]; .leader != ""))
			| [.groups | to_entries[] | [.key, .value.leader]]') || return 1
		views+="$view"$'\n'
	done
	[ "$(printf '%s' "$views" | sort -u | wc -l)" -eq 1 ]
}
wait_for 60 "3 dittonode members with agreed leaders" converged
etcd_healthy() { for u in "${ETCD_CLIENT[@]}"; do curl -sf "$u/health" | jq -e '.health == "true"' || return 1; done; }
[ $RUN_ETCD = 0 ] || wait_for 60 "3 healthy etcd members" etcd_healthy

# Leaders: dittonode's things group, etcd's raft; a follower is the next member.
dn_leader=$(cluster 1 | jq -r .groups.things.leader)
for i in 1 2 3; do [ "$(cluster "$i" | jq -r .node.id)" = "$dn_leader" ] && DN_L=$i; done
etcd_status() { curl -sf -X POST "${ETCD_CLIENT[$1 - 1]}/v3/maintenance/status" -d '{}'; }
ET_L=1
for i in 1 2 3; do [ $RUN_ETCD = 1 ] && [ "$(etcd_status "$i" | jq -r '.header.member_id == .leader')" = true ] && ET_L=$i; done
DN_F=$((DN_L % 3 + 1)) ET_F=$((ET_L % 3 + 1))
echo "== dittonode things leader: node $DN_L, etcd leader: member $ET_L; $CLIENTS clients, $THINGS things/keys, $DURATION per run, libp2p over $TRANSPORT, GOMAXPROCS per dittonode member: $PROCS"

DN_URLS=$(IFS=,; echo "${NODE_HTTP[*]}")
ET_URLS=$(IFS=,; echo "${ETCD_CLIENT[*]}")
# bench NAME dittoload-args...: one run, JSON kept as $OUT/NAME.json.
bench() {
	local name=$1
	shift
	wanted "$name" || return 0
	$BIN/dittoload "$@" -duration "$DURATION" -json >"$OUT/$name.json"
	jq -r '[.throughput_rps, .latency_ms.p50, .latency_ms.p99, .ok, (.errors | tostring)] | @tsv' "$OUT/$name.json" |
		awk -F'\t' -v n="$name" '{ printf "%-22s %8.0f req/s  p50 %7.2fms  p99 %7.2fms  ok %d  errors %s\n", n, $1, $2, $3, $4, $5 }'
}
# pipeline NAME: each node's write pipeline of the things group during the
# run NAME (its prepare included), from /cluster before and after: durable
# log writes, commands and entries per write, commands per entry the
# leader packed, mean write time, FSM batches, early
# appends to followers, forwarded commands per forward request.
pipeline_snap() { for i in 1 2 3; do cluster "$i" >"$OUT/cluster-$1-$i.json"; done; }
pipeline() {
	local i
	wanted "$1" || return 0
	for i in 1 2 3; do
		jq -rs --arg n "$i" '(.[1].groups.things) as $b | (.[0].groups.things) as $a |
			($b.pipeline | to_entries | map({key, value: (.value - $a.pipeline[.key])}) | from_entries) as $p |
			($b.forwards | to_entries | map({key, value: (.value - $a.forwards[.key])}) | from_entries) as $f |
			def per(x; y): if y > 0 then x / y else 0 end;
			"   node \($n) \($b.state): \($p.logWrites) log writes, \(per($p.logCommands; $p.logWrites) * 10 | floor / 10) commands in \(per($p.logEntries; $p.logWrites) * 10 | floor / 10) entries/write, \(per($p.packedCommands; $p.packs) * 10 | floor / 10) commands/packed entry, \(per($p.logWriteTime; $p.logWrites) / 1e4 | floor / 100) ms/write; FSM \(per($p.applyEntries; $p.applyBatches) * 10 | floor / 10) entries/batch; early appends \($p.earlyAppends) (refused \($p.earlyRefused)); forwards \($f.batches), \(per($f.commands; $f.batches) * 10 | floor / 10) commands each, \(per($f.roundTripTime; $f.batches) / 1e4 | floor / 100) ms round trip"' \
			"$OUT/cluster-$1-before-$i.json" "$OUT/cluster-$1-after-$i.json" 2>/dev/null ||
			echo "   node $i: no pipeline counters in /cluster (an older dittonode)"
	done
}
echo "== runs"
wanted dn-put && pipeline_snap dn-put-before
bench dn-put put-property -urls "$DN_URLS" -user "$USER_PW" -things "$THINGS" -clients "$CLIENTS" -prepare
wanted dn-put && pipeline_snap dn-put-after
wanted dn-put && jq -r '"   (prepare: \(.prepare.ok) things through node 1 at \(.prepare.throughput_rps | floor) things/s, errors \(.prepare.errors))"' "$OUT/dn-put.json"
pipeline dn-put
bench etcd-put etcd-put -urls "$ET_URLS" -things "$THINGS" -clients "$CLIENTS" -prepare
wanted etcd-put && jq -r '"   (prepare: \(.prepare.ok) keys through member 1 at \(.prepare.throughput_rps | floor) keys/s, errors \(.prepare.errors))"' "$OUT/etcd-put.json"
bench dn-put-1-leader put-property -url "${NODE_HTTP[DN_L - 1]}" -user "$USER_PW" -things "$THINGS" -clients 1
bench etcd-put-1-leader etcd-put -url "${ETCD_CLIENT[ET_L - 1]}" -things "$THINGS" -clients 1
bench dn-put-1-follower put-property -url "${NODE_HTTP[DN_F - 1]}" -user "$USER_PW" -things "$THINGS" -clients 1
bench etcd-put-1-follower etcd-put -url "${ETCD_CLIENT[ET_F - 1]}" -things "$THINGS" -clients 1
bench dn-get-linearizable get-thing -urls "$DN_URLS" -user "$USER_PW" -things "$THINGS" -clients "$CLIENTS"
bench dn-get-local get-thing -urls "$DN_URLS" -user "$USER_PW" -things "$THINGS" -clients "$CLIENTS" -header consistency:local
bench etcd-get-linearizable etcd-get -urls "$ET_URLS" -things "$THINGS" -clients "$CLIENTS"
bench etcd-get-serializable etcd-get -urls "$ET_URLS" -things "$THINGS" -clients "$CLIENTS" -serializable

# ---- summary ----
if [ -n "${ONLY:-}" ]; then exit 0; fi
v() { jq -r "$2" "$OUT/$1.json"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
lat() { printf '%.2f / %.2f' "$(v "$1" .latency_ms.p50)" "$(v "$1" .latency_ms.p99)"; }
errs() { for n in "$@"; do v "$n" '.errors | to_entries[] | "\(.key)=\(.value)"' | sed "s/^/$n: /"; done; }
DN_W=$(v dn-put .throughput_rps) ET_W=$(v etcd-put .throughput_rps)
LIN=$(v dn-get-linearizable .throughput_rps) LOC=$(v dn-get-local .throughput_rps)
ELIN=$(v etcd-get-linearizable .throughput_rps) ESER=$(v etcd-get-serializable .throughput_rps)
echo
echo "== summary (3 nodes / 3 members on $(nproc) cores, loopback, $THINGS keys, $DURATION per run)"
printf '%-44s %16s %16s %8s\n' "" dittonode etcd ratio
printf '%-44s %16.0f %16.0f %8s\n' "durable writes, $CLIENTS clients spread (req/s)" "$DN_W" "$ET_W" "$(ratio "$DN_W" "$ET_W")"
printf '%-44s %16s %16s\n' "  latency p50 / p99 (ms)" "$(lat dn-put)" "$(lat etcd-put)"
printf '%-44s %16s %16s\n' "commit latency, 1 client via leader (ms)" "$(lat dn-put-1-leader)" "$(lat etcd-put-1-leader)"
printf '%-44s %16s %16s\n' "commit latency, 1 client via follower (ms)" "$(lat dn-put-1-follower)" "$(lat etcd-put-1-follower)"
printf '%-44s %16.0f %16.0f\n' "GET linearizable, $CLIENTS clients (req/s)" "$LIN" "$ELIN"
printf '%-44s %16.0f %16.0f\n' "GET local / serializable (req/s)" "$LOC" "$ESER"
printf '%-44s %16s %16s\n' "  linearizable / local" "$(ratio "$LIN" "$LOC")" "$(ratio "$ELIN" "$ESER")"
printf '%-44s %16s %16s\n' "  latency p50 / p99 linearizable (ms)" "$(lat dn-get-linearizable)" "$(lat etcd-get-linearizable)"
printf '%-44s %16s %16s\n' "  latency p50 / p99 local (ms)" "$(lat dn-get-local)" "$(lat etcd-get-serializable)"
printf 'targets: writes dittonode/etcd >= 2 (%s), reads linearizable/local >= 0.5 (%s)\n' \
	"$(ratio "$DN_W" "$ET_W")" "$(ratio "$LIN" "$LOC")"
E=$(errs dn-put etcd-put dn-put-1-leader etcd-put-1-leader dn-put-1-follower etcd-put-1-follower dn-get-linearizable dn-get-local \
	etcd-get-linearizable etcd-get-serializable)
[ -z "$E" ] || { echo "errors:"; echo "$E"; }
