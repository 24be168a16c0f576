package consensus

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestEarlyReplication: with a slow log store (every write takes
// storeDelay) a commit needs the leader's write and a follower's. With
// early replication they overlap, so a proposal on the leader takes about
// one write; without, it takes at least two, one after the other. Every
// node ends with the same entries either way.
func TestEarlyReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster on a slow log store")
	}
	const delay = 250 * time.Millisecond
	for _, early := range []bool{true, false} {
		t.Run(fmt.Sprintf("early=%v", early), func(t *testing.T) {
			nodes := startClusterWith(t, 3, clusterOptions{config: func(c *Config) {
				c.storeDelay = delay
				c.noEarly = !early
				// The leader loop and the followers' loops block in
				// every write: keep elections away.
				c.HeartbeatTimeout = 2 * time.Second
				c.ElectionTimeout = 2 * time.Second
				c.LeaderLeaseTimeout = time.Second
			}})
			leader := leaderOf(t, nodes)
			var index uint64
			fastest := time.Hour
			for i := range 3 {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				start := time.Now()
				res, err := leader.g.Propose(ctx, fmt.Appendf(nil, "early-%d", i))
				took := time.Since(start)
				cancel()
				if err != nil {
					t.Fatalf("Propose: %v", err)
				}
				index = res.(result).Index
				fastest = min(fastest, took)
			}
			waitReplicated(t, nodes, index)
			st := leader.g.Stats()
			t.Logf("fastest proposal %v with every log write taking %v; leader stats %+v", fastest, delay, st)
			if !early {
				if fastest < 2*delay {
					t.Fatalf("without early replication a proposal took %v, below two sequential log writes (%v)", fastest, 2*delay)
				}
				if st.EarlyAppends != 0 {
					t.Fatalf("early replication off, yet %d early appends", st.EarlyAppends)
				}
				return
			}
			if fastest >= 2*delay-delay/4 {
				t.Fatalf("with early replication a proposal took %v; the leader's and a follower's writes (%v each) did not overlap", fastest, delay)
			}
			if st.EarlyAppends == 0 || st.EarlyEntries == 0 {
				t.Fatalf("no early appends counted: %+v", st)
			}
		})
	}
}
