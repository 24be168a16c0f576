package node

import (
	"context"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/services/gateway"
	"github.com/dittonode/dittonode/services/search"
	"github.com/dittonode/dittonode/services/things"
)

// thingSource adapts the things service to the search index's Source.
type thingSource struct{ things *things.Service }

func (s thingSource) RangeThings(fn func(search.ThingState) bool) {
	s.things.Range(func(r things.Record) bool { return fn(thingState(r)) })
}

func (s thingSource) LookupThing(id string) (search.ThingState, bool) {
	r, ok := s.things.Lookup(id)
	if !ok {
		return search.ThingState{}, false
	}
	return thingState(r), true
}

func thingState(r things.Record) search.ThingState {
	return search.ThingState{
		ID: r.ID, PolicyID: r.PolicyID, Revision: r.Revision,
		Created: ditto.FormatTime(r.Created.Time()), Modified: ditto.FormatTime(r.Modified.Time()),
		JSON: r.FullJSON(),
	}
}

// searchAdapter adapts the search service to the gateway's Search.
type searchAdapter struct{ s *search.Service }

func (a searchAdapter) SearchThings(ctx context.Context, q gateway.SearchQuery) ([]any, string, *int, error) {
	p, err := a.s.Search(ctx, searchQuery(q))
	if err != nil {
		return nil, "", nil, err
	}
	return p.Items, p.Cursor, p.NextPageOffset, nil
}

func (a searchAdapter) CountThings(ctx context.Context, q gateway.SearchQuery) (int, error) {
	return a.s.Count(ctx, searchQuery(q))
}

func searchQuery(q gateway.SearchQuery) search.Query {
	return search.Query{Filter: q.Filter, Namespaces: q.Namespaces, Fields: q.Fields, Options: q.Options, Auth: q.Auth,
		RawItems: q.RawItems, After: q.After}
}
