package policies

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Start begins the expiry sweeper: every SweepInterval it proposes the
// removal of expired subjects (only on the leader when the Log reports
// leadership; elsewhere the proposal is forwarded and applies as a no-op if
// another node already removed them).
func (s *Service) Start(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.cancel != nil {
		return errors.New("policies: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.Sweep(ctx)
			}
		}
	}()
	return nil
}

// Close stops the sweeper and waits for it. It is idempotent and safe
// without Start.
func (s *Service) Close() error {
	s.lifeMu.Lock()
	cancel := s.cancel
	s.lifeMu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	return nil
}

// Sweep proposes, one command per affected policy, the announcements of
// subjects whose beforeExpiry announcement is due (announce.go), then the
// removal of the subjects that expired by now. It returns how many commands
// it proposed.
func (s *Service) Sweep(ctx context.Context) int {
	if l, ok := s.deps.Log.(leaderReporter); ok && !l.IsLeader() {
		return 0
	}
	now := s.deps.Clock()
	stamp := ditto.FormatTime(now)
	// The stamp has millisecond precision; decide on the time Apply sees.
	now = ditto.MillisOf(now).Time()
	s.mu.RLock()
	var announce, expire []string
	for id, rec := range s.state {
		if !rec.live() {
			continue
		}
		if len(dueAnnouncements(rec, now)) > 0 {
			announce = append(announce, id)
		}
		if rec.expiredAt(now) {
			expire = append(expire, id)
		}
	}
	s.mu.RUnlock()
	slices.Sort(announce)
	slices.Sort(expire)
	n := 0
	propose := func(what, id string, cmd []byte) {
		if _, err := s.deps.Log.Propose(ctx, cmd); err != nil {
			s.deps.Logger.Warn("sweep: "+what, "policy", id, "err", err)
			return
		}
		n++
	}
	for _, id := range announce {
		propose("announce expiring policy subjects", id, encodeCommand(cmdAnnounce, announceCmd{ID: id, Time: stamp}))
	}
	for _, id := range expire {
		propose("remove expired policy subjects", id, encodeCommand(cmdExpire, expireCmd{ID: id, Time: stamp}))
	}
	return n
}
