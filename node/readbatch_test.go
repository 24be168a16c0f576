package node

import (
	"errors"
	"slices"
	"testing"

	"github.com/dittonode/dittonode/consensus"
)

func TestReadIndexesFrames(t *testing.T) {
	groups := []string{GroupThings, GroupPolicies}
	got, err := decodeReadGroups(encodeReadGroups(groups))
	if err != nil || !slices.Equal(got, groups) {
		t.Fatalf("groups %v, %v; want %v", got, err, groups)
	}
	indexes, errs := []consensus.Committed{{Index: 7, Term: 3}, {}}, []error{nil, &consensus.NotLeaderError{LeaderID: "x"}}
	bi, be, err := decodeReadResults(string(encodeReadResults(indexes, errs)), 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bi, indexes) || be[0] != nil || !errors.Is(be[1], consensus.ErrNotLeader) {
		t.Fatalf("results %v %v", bi, be)
	}
	if _, _, err := decodeReadResults(string(encodeReadResults(indexes, errs)), 1); err == nil {
		t.Fatal("a response for another number of groups was accepted")
	}
	for name, b := range map[string][]byte{
		"empty":     {},
		"no groups": {0},
		"too long":  {1, 5, 'a'},
		"trailing":  append(encodeReadGroups(groups), 0),
		"too many":  encodeReadGroups(make([]string, maxReadGroups+1)),
	} {
		if _, err := decodeReadGroups(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestReadQueueUnion: callers that join while a round is pending share it,
// and it asks for the union of their groups.
func TestReadQueueUnion(t *testing.T) {
	q := &readQueue{running: true} // no sender: rounds stay pending
	a := q.join([]string{GroupThings, GroupPolicies})
	b := q.join([]string{GroupPolicies})
	c := q.join([]string{GroupConnectivity})
	if a != b || b != c {
		t.Fatal("callers of one pending round got different rounds")
	}
	if want := []string{GroupThings, GroupPolicies, GroupConnectivity}; !slices.Equal(a.groups, want) {
		t.Fatalf("round asks %v, want %v", a.groups, want)
	}
}

func FuzzReadIndexesDecode(f *testing.F) {
	f.Add(encodeReadGroups([]string{GroupThings, GroupPolicies}))
	f.Add(encodeReadResults([]consensus.Committed{{Index: 1, Term: 1}, {Index: 2}}, []error{nil, consensus.ErrTimeout}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if groups, err := decodeReadGroups(b); err == nil && (len(groups) == 0 || len(groups) > maxReadGroups) {
			t.Fatalf("%d groups", len(groups))
		}
		if indexes, errs, err := decodeReadResults(string(b), 2); err == nil && (len(indexes) != 2 || len(errs) != 2) {
			t.Fatalf("%d indexes, %d errors", len(indexes), len(errs))
		}
	})
}
