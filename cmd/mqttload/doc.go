// Command mqttload is dittonode's MQTT load generator (MQTT 5 with
// paho.golang). It drives any broker on the local machine, so the embedded
// broker and mosquitto are measured with the same tool and settings:
//
//	mqttload p2p  -broker 127.0.0.1:1883 -user ditto:ditto -pairs 8 -inflight 32 -qos 1 -duration 10s
//	mqttload p2p  -broker 127.0.0.1:1884 -qos 0 -rate 20000           (a plain mosquitto, anonymous)
//	mqttload twin -broker 127.0.0.1:1883 -user ditto:ditto -http http://127.0.0.1:8080 -devices 100 -inflight 4
//	mqttload idle -broker 127.0.0.1:1883 -user ditto:ditto -conns 10000 -pid <broker pid>
//
// p2p: each pair has its own topic; publishers keep -inflight messages in
// flight, throughput is what the subscribers received per second, and
// sent/received/lost are reported. twin: each device sends Ditto Protocol
// modifies of its own thing to ditto/command at QoS 1; dittonode
// acknowledges after the commit, so PUBACKs per second are committed
// modifies per second (checked against the things' revisions at the end).
// idle: opens connections and reports the broker's resident memory.
//
// Only loopback brokers are accepted. It imports nothing of dittonode.
package main
