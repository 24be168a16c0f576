package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/dittonode/dittonode/ditto"
)

// TwinAcks collects the custom acknowledgements of the twin event of a
// twin command (services/live.Router implements it).
type TwinAcks interface {
	// ExpectAcks registers custom labels before the command runs; wait
	// returns one ack per label in order (408 for the missing ones once ctx
	// ends) and cancel withdraws the expectation.
	ExpectAcks(ctx context.Context, thingID, correlationID string, labels []string) (wait func(ctx context.Context) []ditto.Envelope, cancel func(), err error)
}

// Built-in acknowledgement labels.
const (
	ackTwinPersisted   = "twin-persisted"
	ackLiveResponse    = "live-response"
	ackSearchPersisted = "search-persisted"
)

// requestedAcks parses the requested-acks header into distinct valid labels.
func requestedAcks(raw string) ([]string, *ditto.Error) { return ditto.ParseAckLabels(raw) }

// zeroTimeout reports whether the timeout header asks not to wait.
func zeroTimeout(h ditto.Headers) bool {
	v, ok := h[ditto.HeaderTimeout]
	if !ok {
		return false
	}
	d, err := parseTimeout(v)
	return err == nil && d == 0
}

// serveTwinAcks answers a modifying twin things command that requested
// custom acknowledgements: it registers the labels with Acks, runs the
// command, waits for the acks (bounded by ctx) and writes the aggregation
// {label:{status,payload,headers}} with 200 if all are 2xx, else 424 (a
// single ack: its status). It reports false, writing nothing, when the
// normal response answers the request (plainAckResponse). timeout=0 with
// requested acks is 400.
func (s *Server) serveTwinAcks(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, cmd ditto.Command, respond bool) bool {
	raw, explicit := cmd.Headers[ditto.HeaderRequestedAcks]
	if !explicit {
		return false
	}
	labels, derr := requestedAcks(raw)
	if derr != nil {
		writeDittoError(w, derr)
		return true
	}
	if len(labels) > 0 && zeroTimeout(cmd.Headers) {
		writeDittoError(w, ditto.ErrHeaderInvalid.New("The timeout must not be zero when acknowledgements are requested."))
		return true
	}
	if plainAckResponse(labels) {
		return false
	}
	custom := customLabels(labels)
	cid := cmd.Headers[ditto.HeaderCorrelationID]
	wait, cancel, err := s.expectTwinAcks(ctx, cmd.Entity, cid, custom)
	if err != nil {
		s.writeError(w, resThings, cid, err)
		return true
	}
	defer cancel()
	res, err := s.execute(ctx, resThings, cmd)
	if err != nil {
		if !respond {
			w.WriteHeader(http.StatusAccepted)
			return true
		}
		s.writeCommandError(w, resThings, cmd, res, err)
		return true
	}
	got := wait(ctx)
	loc := ""
	if res.Status == http.StatusCreated {
		loc = location(r, rt, cmd, res)
	}
	status, acks := aggregateTwinAcks(labels, custom, got, res, cid, loc)
	if !respond {
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	s.writeValue(w, status, acks, cid)
	return true
}

// plainAckResponse reports requested acks that the command's own response
// answers: none, or only twin-persisted or only live-response. Any other
// request (several labels, built-in ones included, or one custom or
// search-persisted label) gets the aggregation, as in Ditto's
// AcknowledgementAggregatorActor.
func plainAckResponse(labels []string) bool {
	return len(labels) == 0 || len(labels) == 1 && (labels[0] == ackTwinPersisted || labels[0] == ackLiveResponse)
}

// customLabels are the labels that are not built in.
func customLabels(labels []string) []string {
	var custom []string
	for _, l := range labels {
		if l != ackTwinPersisted && l != ackLiveResponse && l != ackSearchPersisted {
			custom = append(custom, l)
		}
	}
	return custom
}

// expectTwinAcks registers the custom labels of a twin command with Acks;
// without Acks nobody can issue them, and wait reports them all as timed
// out once ctx ends.
func (s *Server) expectTwinAcks(ctx context.Context, thingID, cid string, custom []string) (wait func(context.Context) []ditto.Envelope, cancel func(), err error) {
	if len(custom) == 0 {
		return func(context.Context) []ditto.Envelope { return nil }, func() {}, nil
	}
	if s.deps.Acks != nil {
		return s.deps.Acks.ExpectAcks(ctx, thingID, cid, custom)
	}
	wait = func(ctx context.Context) []ditto.Envelope {
		<-ctx.Done()
		out := make([]ditto.Envelope, len(custom))
		for i, l := range custom {
			e := ditto.ErrAckTimeout.New("The acknowledgement request for '%s' reached the specified timeout.", l)
			out[i] = ditto.Envelope{Headers: ditto.Headers{ditto.HeaderCorrelationID: cid}, Status: e.Status, Value: e.JSON()}
		}
		return out
	}
	return wait, func() {}, nil
}

// aggregateTwinAcks builds the aggregated acknowledgements of a twin
// command, {label:{status,payload,headers}} in the order of labels, from
// its result (twin-persisted; location is set on a 201 when not empty),
// search-persisted and the custom acks got (in the order of custom). The
// status is the single ack's own, else 200 if all are 2xx, else 424.
func aggregateTwinAcks(labels, custom []string, got []ditto.Envelope, res ditto.Result, cid, location string) (int, map[string]any) {
	acks := make(map[string]any, len(labels))
	status, n := 0, 0
	add := func(label string, st int, payload json.RawMessage, headers ditto.Headers) {
		entry := map[string]any{"status": st, "headers": headers}
		if len(payload) > 0 {
			entry["payload"] = payload
		}
		acks[label] = entry
		n++
		switch {
		case n == 1:
			status = st
		case st < 200 || st > 299 || status < 200 || status > 299:
			status = http.StatusFailedDependency
		default:
			status = http.StatusOK
		}
	}
	for _, l := range labels {
		switch l {
		case ackTwinPersisted:
			h := ditto.Headers{ditto.HeaderCorrelationID: cid}
			if res.ETag != "" {
				h[ditto.HeaderETag] = res.ETag
			}
			if location != "" {
				h["location"] = location
			}
			add(l, res.Status, resultJSON(res), h)
		case ackSearchPersisted:
			// The search index is a synchronous bus observer: it is up to
			// date once the command returned on this node.
			add(l, http.StatusNoContent, nil, ditto.Headers{ditto.HeaderCorrelationID: cid})
		case ackLiveResponse:
		default:
			a := got[labelIndex(custom, l)]
			add(l, a.Status, a.Value, a.Headers)
		}
	}
	return status, acks
}

// resultJSON is a result's value as JSON, nil when it has none.
func resultJSON(res ditto.Result) json.RawMessage {
	switch {
	case res.Raw != nil:
		return res.Raw
	case res.Value != nil && res.Status != http.StatusNoContent:
		return ditto.EncodeJSON(res.Value)
	}
	return nil
}

func labelIndex(list []string, s string) int {
	for i, e := range list {
		if e == s {
			return i
		}
	}
	return -1
}
