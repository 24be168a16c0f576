package node

import (
	"github.com/dittonode/dittonode/services/gateway"
	"github.com/dittonode/dittonode/services/policies"
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
)
