package policies

import (
	"context"
	"errors"
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

// Sweep proposes the removal of the subjects that expired by now, one
// command per affected policy, and returns how many it proposed.
func (s *Service) Sweep(ctx context.Context) int {
	if l, ok := s.deps.Log.(leaderReporter); ok && !l.IsLeader() {
		return 0
	}
	now := s.deps.Clock()
	s.mu.RLock()
	var ids []string
	for id, rec := range s.state {
		if rec.live() && hasExpired(rec.Policy, now) {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	n := 0
	for _, id := range ids {
		cmd := encodeCommand(cmdExpire, expireCmd{ID: id, Time: ditto.FormatTime(now)})
		if _, err := s.deps.Log.Propose(ctx, cmd); err != nil {
			s.deps.Logger.Warn("sweep expired policy subjects", "policy", id, "err", err)
			continue
		}
		n++
	}
	return n
}
