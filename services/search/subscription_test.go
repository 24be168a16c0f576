package search

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
)

type protoValue struct {
	SubscriptionID string          `json:"subscriptionId"`
	Items          []any           `json:"items"`
	Error          json.RawMessage `json:"error"`
}

func next(t *testing.T, sub *Subscription) (string, protoValue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	var v protoValue
	if err := json.Unmarshal(env.Value, &v); err != nil {
		t.Fatal(err)
	}
	if v.SubscriptionID != sub.ID() {
		t.Fatalf("subscriptionId %q, want %q", v.SubscriptionID, sub.ID())
	}
	return env.Topic, v
}

func TestSubscriptionProtocol(t *testing.T) {
	w := newWorld(t)
	w.populate(41, 200)
	s := w.start(t, DefaultConfig())
	admin := ditto.Auth{Subjects: []string{subjAdmin}}
	ctx := context.Background()

	t.Run("pages then complete", func(t *testing.T) {
		q := Query{Filter: `exists(attributes/location)`, Options: "size(9),sort(-thingId)", Auth: admin}
		want := ids(w.refSearch(t, q, "-thingId"))
		sub, err := s.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if topic, _ := next(t, sub); topic != TopicCreated {
			t.Fatalf("first envelope %s", topic)
		}
		var got []string
		for {
			if err := sub.Request(1); err != nil {
				t.Fatal(err)
			}
			topic, v := next(t, sub)
			if topic != TopicNext || len(v.Items) == 0 || len(v.Items) > 9 {
				t.Fatalf("got %s with %d items", topic, len(v.Items))
			}
			got = append(got, ids(v.Items)...)
			if len(got) == len(want) {
				break
			}
		}
		if topic, _ := next(t, sub); topic != TopicComplete {
			t.Fatalf("after the last page: %s", topic)
		}
		if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after complete: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatal(diff)
		}
	})
	t.Run("invalid query fails only after a request", func(t *testing.T) {
		sub, err := s.Subscribe(ctx, Query{Filter: `eq(`, Auth: admin})
		if err != nil {
			t.Fatal(err)
		}
		if topic, _ := next(t, sub); topic != TopicCreated {
			t.Fatal(topic)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := sub.Next(waitCtx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("before request: %v", err)
		}
		if err := sub.Request(1); err != nil {
			t.Fatal(err)
		}
		topic, v := next(t, sub)
		var de ditto.Error
		_ = json.Unmarshal(v.Error, &de)
		if topic != TopicFailed || de.Code != "rql.expression.invalid" {
			t.Fatalf("%s %s", topic, v.Error)
		}
	})
	for _, opts := range []string{"cursor(abc)", "limit(0,3)", "size(0)"} {
		t.Run("options "+opts, func(t *testing.T) {
			sub, _ := s.Subscribe(ctx, Query{Options: opts, Auth: admin})
			next(t, sub)
			_ = sub.Request(2)
			topic, v := next(t, sub)
			var de ditto.Error
			_ = json.Unmarshal(v.Error, &de)
			if topic != TopicFailed || de.Code != "thing-search:search.option.invalid" {
				t.Fatalf("%s %s", topic, v.Error)
			}
		})
	}
	t.Run("non-positive demand is a protocol error", func(t *testing.T) {
		sub, _ := s.Subscribe(ctx, Query{Auth: admin})
		next(t, sub)
		err := sub.Request(0)
		var de *ditto.Error
		if !errors.As(err, &de) || de.Code != "thing-search:subscription.protocol.error" {
			t.Fatalf("err = %v", err)
		}
		topic, v := next(t, sub)
		if topic != TopicFailed || !json.Valid(v.Error) {
			t.Fatal(topic)
		}
		if err := sub.Request(1); err == nil {
			t.Fatal("request after failed accepted")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		sub, _ := s.Subscribe(ctx, Query{Auth: admin})
		next(t, sub)
		_ = sub.Request(1)
		if topic, _ := next(t, sub); topic != TopicNext {
			t.Fatal(topic)
		}
		sub.Cancel()
		if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after cancel: %v", err)
		}
	})
	t.Run("empty result completes", func(t *testing.T) {
		sub, _ := s.Subscribe(ctx, Query{Filter: `eq(thingId,"none:none")`, Auth: admin})
		next(t, sub)
		_ = sub.Request(1)
		if topic, _ := next(t, sub); topic != TopicComplete {
			t.Fatal(topic)
		}
	})
}

// TestSubscriptionIdleTimeout: a subscription that waits longer than the
// idle timeout for a request fails with thing-search:subscription.timeout;
// requests in time keep it going.
func TestSubscriptionIdleTimeout(t *testing.T) {
	w := newWorld(t)
	w.populate(43, 20)
	cfg := DefaultConfig()
	cfg.IdleTimeout = 150 * time.Millisecond
	s := w.start(t, cfg)
	sub, err := s.Subscribe(context.Background(), Query{Options: "size(5)", Auth: ditto.Auth{Subjects: []string{subjAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if topic, _ := next(t, sub); topic != TopicCreated {
		t.Fatalf("first envelope %s", topic)
	}
	if err := sub.Request(1); err != nil {
		t.Fatal(err)
	}
	if topic, _ := next(t, sub); topic != TopicNext {
		t.Fatalf("page: %s", topic)
	}
	began := time.Now()
	topic, v := next(t, sub)
	if topic != TopicFailed || !json.Valid(v.Error) || !bytesContain(v.Error, "thing-search:subscription.timeout") {
		t.Fatalf("after idling: %s %s", topic, v.Error)
	}
	if waited := time.Since(began); waited < cfg.IdleTimeout {
		t.Fatalf("failed after %s, before the idle timeout", waited)
	}
}

func bytesContain(b []byte, s string) bool { return strings.Contains(string(b), s) }
