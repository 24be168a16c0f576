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
// It reports false, sending nothing, when no custom label was requested
// (built-in labels alone give the normal response) or no response is
// required (nobody waits: the command runs as usual). timeout=0 with
// requested acks is 400.
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
	custom := customLabels(labels)
	if len(custom) == 0 || !respond {
		return false
	}
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
