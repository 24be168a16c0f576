package gateway

import (
	"context"
	"encoding/json"

	"github.com/dittonode/dittonode/ditto"
)

// twinAcks runs a modifying things command that requested custom
// acknowledgements, exactly like HTTP does (serveTwinAcks): it registers
// the custom labels with Acks before the command runs, so the command's
// twin event carries them in requested-acks, waits for them (bounded by
// ctx, the command's timeout) and answers with the aggregated
// acknowledgements: topic <ns>/<name>/things/twin/acks, path "/", value
// {label:{status,payload,headers}} and status 200 if all are 2xx, else 424
// (one requested ack: its own status). A failing command gets its error.
// It reports false, sending nothing, when the normal response answers the
// request (plainAckResponse). Requested acks with response-required=false
// or timeout=0 are 400, and the command does not run.
func (ss *wsSession) twinAcks(ctx context.Context, t ditto.Topic, cmd ditto.Command, respond bool) bool {
	raw, explicit := cmd.Headers[ditto.HeaderRequestedAcks]
	if !explicit {
		return false
	}
	labels, derr := requestedAcks(raw)
	if derr != nil {
		ss.sendError(t, cmd.Headers, derr)
		return true
	}
	if len(labels) > 0 && zeroTimeout(cmd.Headers) {
		ss.sendError(t, cmd.Headers, ditto.ErrHeaderInvalid.New("The timeout must not be zero when acknowledgements are requested."))
		return true
	}
	if len(labels) > 0 && !respond {
		ss.sendError(t, cmd.Headers, ditto.ErrHeaderInvalid.New("For WebSocket, it is forbidden to request acknowledgements while 'response-required' is set to false.").
			WithDescription("Set 'response-required' to true or remove the header 'requested-acks'."))
		return true
	}
	if plainAckResponse(labels) {
		return false
	}
	custom := customLabels(labels)
	cid := cmd.Headers.Get(ditto.HeaderCorrelationID)
	wait, cancel, err := ss.srv.expectTwinAcks(ctx, cmd.Entity, cid, custom)
	if err != nil {
		ss.sendError(t, cmd.Headers, ss.srv.toDittoError(resThings, cid, err))
		return true
	}
	defer cancel()
	res, err := ss.srv.execute(ctx, resThings, cmd)
	if err != nil {
		ss.sendError(t, cmd.Headers, ss.srv.toDittoError(resThings, cid, err))
		return true
	}
	got := wait(ctx)
	status, acks := aggregateTwinAcks(labels, custom, got, res, cid, "")
	at := ditto.Topic{Namespace: t.Namespace, Name: t.Name, Group: ditto.GroupThings, Channel: ditto.ChannelTwin, Criterion: ditto.CriterionAcks}
	ss.sendEnvelope(ditto.Envelope{
		Topic:   at.String(),
		Headers: ditto.Headers{ditto.HeaderCorrelationID: cid},
		Path:    "/", Status: status, Value: json.RawMessage(ditto.EncodeJSON(acks)),
	})
	return true
}
