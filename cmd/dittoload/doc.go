// Command dittoload is dittonode's own HTTP load generator. It benchmarks a
// node through the Eclipse Ditto HTTP API on the local machine:
//
//	dittoload put-property -url http://127.0.0.1:8080 -user ditto:ditto -things 100000 -clients 64 -duration 20s -prepare
//	dittoload get-thing    -url http://127.0.0.1:8080 -user ditto:ditto -things 100000 -clients 64 -duration 20s
//	dittoload get          -url http://127.0.0.1:9090/ -clients 64 -duration 10s
//	dittoload hello        -listen 127.0.0.1:9090
//	dittoload put-property -urls http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 -things 10000
//	dittoload get-thing    -urls … -header consistency:local
//	dittoload etcd-put     -urls http://127.0.0.1:2379,… -things 10000 -prepare
//	dittoload etcd-get     -urls http://127.0.0.1:2379,… -things 10000 [-serializable]
//
// -urls spreads the clients round-robin over several nodes (client i talks to
// the i-th URL modulo their number; -prepare goes through the first), and
// -header adds a header to every request, such as consistency:local. The
// etcd modes drive etcd's v3 JSON gateway (POST /v3/kv/put, /v3/kv/range)
// with keys load/thing-<i> over the same -things key space, and put the same
// bytes as value that put-property sends as property (the decimal request
// number), so a 3-member etcd and a 3-node dittonode compare under the same
// load; scripts/bench-mesh.sh runs both.
//
// With -prepare, put-property and get-thing first create the things
// load:thing-0 … load:thing-<N-1>, shaped like Ditto's benchmark thing. The
// load phase is a closed loop of -clients workers, or an open loop at -rate
// requests per second (latency then counts from the scheduled start, so
// queueing is not hidden). It ends after -duration or on interrupt and prints
// one summary, human-readable or as JSON with -json: requests, successes,
// errors by status, throughput and latency percentiles taken from a
// fixed-size log-linear histogram. hello serves a fixed thing-like JSON body
// as a plain net/http baseline for get.
//
// The client is valyala/fasthttp by default (-client fast): it reuses its
// request and response buffers and keep-alive connections, so the load tool
// takes little of the CPU that a node under test shares with it on one
// machine (about half of what net/http's client costs per request).
// -client std uses net/http's client instead, for comparison.
//
// dittoload talks only to loopback (127.0.0.0/8, ::1, localhost): targets are
// checked when parsed and again on every dial.
package main
