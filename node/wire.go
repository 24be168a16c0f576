package node

import (
	"context"

	"github.com/dittonode/dittonode/services/gateway"
	"github.com/dittonode/dittonode/services/live"
	"github.com/dittonode/dittonode/services/policies"
	"github.com/dittonode/dittonode/services/search"
	"github.com/dittonode/dittonode/services/things"
)

// Where the services meet: each concrete service satisfies the consumer-side
// interface of the package that uses it.
var (
	_ gateway.Things   = (*things.Service)(nil)
	_ gateway.Policies = (*policies.Service)(nil)
	_ things.Policies  = (*policies.Service)(nil)
	_ things.Log       = (*groupRef)(nil)
	_ policies.Log     = (*groupRef)(nil)
	_ gateway.Live     = (*live.Router)(nil)
	_ gateway.TwinAcks = (*live.Router)(nil)
	_ live.Enforcers   = (*policies.Service)(nil)
	_ live.Things      = thingPolicies{}

	_ gateway.Enforcers      = (*policies.Service)(nil)
	_ gateway.SearchProtocol = searchProtocol{}
	_ gateway.Cluster        = clusterView{}
)

// thingState gives the gateway the applied JSON and policy of a thing
// (extraFields enrichment of live signals).
type thingJSON struct{ things *things.Service }

func (t thingJSON) lookup(id string) ([]byte, string, bool) {
	rec, ok := t.things.Lookup(id)
	return rec.FullJSON(), rec.PolicyID, ok
}

// searchProtocol adapts the search service to the gateway's WebSocket
// search protocol.
type searchProtocol struct{ s *search.Service }

func (a searchProtocol) Subscribe(ctx context.Context, q gateway.SearchQuery) (gateway.SearchSubscription, error) {
	sub, err := a.s.Subscribe(ctx, searchQuery(q))
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// thingPolicies gives the live router the policy of an applied thing.
type thingPolicies struct{ things *things.Service }

func (t thingPolicies) ThingPolicy(thingID string) (string, bool) {
	rec, ok := t.things.Lookup(thingID)
	return rec.PolicyID, ok
}
