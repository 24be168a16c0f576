package gateway_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// BenchmarkWSFanout100 writes changes while 100 WebSocket subscribers
// receive them; it reports delivered events per second and the p99 delay
// from the write's start to the delivery.
func BenchmarkWSFanout100(b *testing.B) {
	const subscribers = 100
	n := startTwinNode(b, nil)
	owner := newTwHTTP(b, n, "ditto")
	owner.must("PUT", "/api/2/things/ns:bench", `{"attributes":{"t":0}}`, 201)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	clients := make([]*twWS, subscribers)
	for i := range clients {
		clients[i] = dialTwWS(b, n, "ditto", "")
		clients[i].start("START-SEND-EVENTS")
	}
	b.ReportAllocs()
	b.ResetTimer()
	writes := b.N
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, writes)
			for range writes {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, data, err := c.conn.Read(ctx)
				cancel()
				if err != nil {
					b.Errorf("read: %v", err)
					return
				}
				env, err := ditto.DecodeEnvelope(data)
				if err != nil {
					b.Errorf("decode: %v", err)
					return
				}
				var sent int64
				if err := json.Unmarshal(env.Value, &sent); err == nil {
					local = append(local, time.Since(time.Unix(0, sent)))
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	began := time.Now()
	for range writes {
		owner.must("PUT", "/api/2/things/ns:bench/attributes/t", strconv.FormatInt(time.Now().UnixNano(), 10), 204)
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	slices.Sort(latencies)
	if len(latencies) > 0 {
		b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	}
}
