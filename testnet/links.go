package testnet

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dittonode/dittonode/node"
)

// link is one direction between two nodes.
type link struct{ from, to int }

// protoLink is one protocol on one direction between two nodes.
type protoLink struct {
	link
	proto string
}

// links is the fault table of the whole net: partitions, losses, delays
// and paused nodes. Each node's node.Deps.Links consults it with the peer
// ID of the other side.
type links struct {
	mu    sync.RWMutex
	ids   map[string]int // peer ID -> node index (current incarnations)
	cut   map[link]bool
	drop  map[link]float64
	delay map[link]time.Duration
	// protoDelay delays only the streams of one protocol on a link.
	protoDelay map[protoLink]time.Duration
	paused     map[int]bool
	down       map[int]bool // being killed: everything cut
	rnd        *rand.Rand   // guarded by rndMu
	rndMu      sync.Mutex
}

func newLinks(seed int64) *links {
	return &links{
		ids: map[string]int{}, cut: map[link]bool{}, drop: map[link]float64{},
		delay: map[link]time.Duration{}, protoDelay: map[protoLink]time.Duration{},
		paused: map[int]bool{}, down: map[int]bool{},
		rnd: rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
	}
}

// faults returns the node.LinkFaults of node i.
func (l *links) faults(i int) node.LinkFaults {
	return func(peerID, proto string) node.LinkFault {
		l.mu.RLock()
		j, known := l.ids[peerID]
		if !known {
			l.mu.RUnlock()
			return node.LinkFault{}
		}
		k := link{i, j}
		f := node.LinkFault{
			Cut:   l.cut[k] || l.paused[i] || l.paused[j] || l.down[i] || l.down[j],
			Delay: l.delay[k],
		}
		if d, ok := l.protoDelay[protoLink{k, proto}]; ok {
			f.Delay += d
		}
		p := l.drop[k]
		l.mu.RUnlock()
		if !f.Cut && p > 0 {
			l.rndMu.Lock()
			f.Cut = l.rnd.Float64() < p
			l.rndMu.Unlock()
		}
		return f
	}
}

func (l *links) setID(i int, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.ids {
		if v == i {
			delete(l.ids, k)
		}
	}
	l.ids[id] = i
}

func (l *links) partition(a, b []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			if x != y {
				l.cut[link{x, y}] = true
				l.cut[link{y, x}] = true
			}
		}
	}
}

func (l *links) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.cut)
	clear(l.drop)
	clear(l.delay)
	clear(l.protoDelay)
}

func (l *links) setDrop(from, to int, p float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p <= 0 {
		delete(l.drop, link{from, to})
		return
	}
	l.drop[link{from, to}] = p
}

func (l *links) setDelay(from, to int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d <= 0 {
		delete(l.delay, link{from, to})
		return
	}
	l.delay[link{from, to}] = d
}

func (l *links) setProtoDelay(from, to int, proto string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := protoLink{link{from, to}, proto}
	if d <= 0 {
		delete(l.protoDelay, k)
		return
	}
	l.protoDelay[k] = d
}

func (l *links) setPaused(i int, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused[i] = on
}

func (l *links) setDown(i int, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down[i] = on
}

// isolated reports whether node i can reach no one (paused or down).
func (l *links) isolated(i int) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.paused[i] || l.down[i]
}

// clean reports whether no link fault is set.
func (l *links) clean() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.cut) == 0 && len(l.drop) == 0 && len(l.delay) == 0 && len(l.protoDelay) == 0
}
