package connectivity

import (
	"context"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// API is what /api/2/connections does, independent of HTTP: the gateway
// decodes requests and encodes answers, API checks, proposes and reads.
type API struct {
	svc   *Service
	rt    *Runtime
	newID func() string
}

// NewAPI joins the connection store and the runtime of this node.
func NewAPI(svc *Service, rt *Runtime) *API {
	return &API{svc: svc, rt: rt, newID: newCorrelationID}
}

// Authorized reports whether auth may manage connections.
func (a *API) Authorized(auth ditto.Auth) bool { return a.svc.CanManage(auth) }

// Connection commands of POST /connections/{id}/command.
const (
	CmdOpen         = "connectivity.commands:openConnection"
	CmdClose        = "connectivity.commands:closeConnection"
	CmdTest         = "connectivity.commands:testConnection"
	CmdResetMetrics = "connectivity.commands:resetConnectionMetrics"
	CmdEnableLogs   = "connectivity.commands:enableConnectionLogs"
	CmdResetLogs    = "connectivity.commands:resetConnectionLogs"
)

func decodeRecord(r *Record) (map[string]any, error) {
	v, err := ditto.DecodeJSON(r.JSON)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

func selectFields(m map[string]any, fields string) (any, error) {
	if fields == "" {
		return m, nil
	}
	sel, err := ditto.ParseFieldSelector(fields)
	if err != nil {
		return nil, err
	}
	return sel.Apply(m), nil
}

// List returns the connections (or only their IDs), with a field
// selection.
func (a *API) List(ctx context.Context, idsOnly bool, fields string, local bool) ([]any, error) {
	if !local {
		if err := a.svc.deps.Log.ReadBarrier(ctx); err != nil {
			return nil, err
		}
	}
	recs := a.svc.List()
	out := make([]any, 0, len(recs))
	for _, r := range recs {
		if idsOnly {
			out = append(out, r.ID)
			continue
		}
		m, err := decodeRecord(r)
		if err != nil {
			return nil, err
		}
		v, err := selectFields(m, fields)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Retrieve returns one connection with a field selection and its revision.
func (a *API) Retrieve(ctx context.Context, id, fields string, local bool) (any, int64, error) {
	r, err := a.svc.Retrieve(ctx, id, local)
	if err != nil {
		return nil, 0, err
	}
	m, err := decodeRecord(r)
	if err != nil {
		return nil, 0, err
	}
	v, err := selectFields(m, fields)
	return v, r.Revision, err
}

// Create stores a new connection (an ID is generated when the definition
// has none). With dryRun it only validates and tests the connection and
// returns the test's outcome.
func (a *API) Create(ctx context.Context, def any, dryRun bool) (any, string, error) {
	m, ok := def.(map[string]any)
	if !ok {
		return nil, "", ditto.ErrConnectionInvalid.New("The connection definition must be a JSON object.")
	}
	if _, has := m["id"]; !has {
		m["id"] = a.newID()
	}
	if dryRun {
		c, _, err := a.svc.Validate(m)
		if err != nil {
			return nil, "", err
		}
		if err := a.rt.Test(ctx, c); err != nil {
			return nil, c.ID, err
		}
		return map[string]any{"connectionId": c.ID, "success": "The connection could be opened and its sources subscribed."}, c.ID, nil
	}
	r, _, err := a.svc.Put(ctx, m, true, false)
	if err != nil {
		return nil, "", err
	}
	v, err := decodeRecord(r)
	return v, r.ID, err
}

// Modify replaces an existing connection; the ID in the body, if any, must
// be the one of the path.
func (a *API) Modify(ctx context.Context, id string, def any) error {
	m, ok := def.(map[string]any)
	if !ok {
		return ditto.ErrConnectionInvalid.New("The connection definition must be a JSON object.")
	}
	if bid, has := m["id"]; has && bid != id {
		return ditto.ErrConnectionInvalid.New("The connection ID in the body '%v' differs from the ID '%s' of the resource.", bid, id)
	}
	m["id"] = id
	_, _, err := a.svc.Put(ctx, m, false, true)
	return err
}

// Delete removes a connection.
func (a *API) Delete(ctx context.Context, id string) error { return a.svc.Delete(ctx, id) }

// Command runs a connectivity command on a connection.
func (a *API) Command(ctx context.Context, id, command string) (any, error) {
	command = strings.TrimSpace(command)
	r, err := a.svc.Retrieve(ctx, id, false)
	if err != nil {
		return nil, err
	}
	resp := func(typ string) map[string]any {
		return map[string]any{"type": "connectivity.responses:" + typ, "status": 200, "connectionId": id}
	}
	switch command {
	case CmdOpen, CmdClose:
		status := "open"
		if command == CmdClose {
			status = "closed"
		}
		m, err := decodeRecord(r)
		if err != nil {
			return nil, err
		}
		if m["connectionStatus"] != status {
			m["connectionStatus"] = status
			if _, _, err := a.svc.Put(ctx, m, false, true); err != nil {
				return nil, err
			}
		}
		return resp(strings.TrimPrefix(command, "connectivity.commands:")), nil
	case CmdTest:
		c, err := ParseConnection(r.JSON, a.svc.deps.Types)
		if err != nil {
			return nil, err
		}
		if err := a.rt.Test(ctx, c); err != nil {
			return nil, err
		}
		return resp("testConnection"), nil
	case CmdResetMetrics, CmdEnableLogs, CmdResetLogs:
		op := map[string]string{CmdResetMetrics: OpResetMetrics, CmdEnableLogs: OpEnableLogs, CmdResetLogs: OpResetLogs}[command]
		if _, err := a.rt.onOwner(ctx, op, id); err != nil {
			return nil, err
		}
		return resp(strings.TrimPrefix(command, "connectivity.commands:")), nil
	}
	return nil, ditto.ErrConnectionCommand.New("The command '%s' is not a connectivity command.", clip(command))
}

// Status returns the connection's live status from the node that runs it.
func (a *API) Status(ctx context.Context, id string) (any, error) {
	if _, err := a.svc.Retrieve(ctx, id, true); err != nil {
		return nil, err
	}
	return a.rt.onOwner(ctx, OpStatus, id)
}

// Metrics returns the connection's metrics from the node that runs it.
func (a *API) Metrics(ctx context.Context, id string) (any, error) {
	if _, err := a.svc.Retrieve(ctx, id, true); err != nil {
		return nil, err
	}
	return a.rt.onOwner(ctx, OpMetrics, id)
}

// Logs returns the connection's logs from the node that runs it.
func (a *API) Logs(ctx context.Context, id string) (any, error) {
	if _, err := a.svc.Retrieve(ctx, id, true); err != nil {
		return nil, err
	}
	return a.rt.onOwner(ctx, OpLogs, id)
}
