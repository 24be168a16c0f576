package testnet

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestRegisterModel shows that the checker the linearizability test
// relies on rejects the anomalies it is meant to find.
func TestRegisterModel(t *testing.T) {
	w := func(k int, v, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: regInput{Key: k, Kind: opWrite, Value: v}, Output: regOutput{Rev: rev, OK: true}, Call: call, Return: ret}
	}
	r := func(k int, v, rev, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: regInput{Key: k, Kind: opRead}, Output: regOutput{Value: v, Rev: rev, OK: true}, Call: call, Return: ret}
	}
	cas := func(k int, v, expect int64, out regOutput, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: regInput{Key: k, Kind: opCAS, Value: v, Expect: expect}, Output: out, Call: call, Return: ret}
	}
	unknown := regOutput{Unknown: true}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"read after write", []porcupine.Operation{w(0, 5, 2, 0, 10), r(0, 5, 2, 20, 30)}, porcupine.Ok},
		{"stale read after an acknowledged write", []porcupine.Operation{w(0, 5, 2, 0, 10), r(0, 0, 1, 20, 30)}, porcupine.Illegal},
		{"concurrent read may see either", []porcupine.Operation{w(0, 5, 2, 0, 30), r(0, 0, 1, 10, 20)}, porcupine.Ok},
		{"lost write: revision reused", []porcupine.Operation{w(0, 5, 2, 0, 10), w(0, 6, 2, 20, 30)}, porcupine.Illegal},
		{"duplicated write skips a revision", []porcupine.Operation{w(0, 5, 3, 0, 10)}, porcupine.Illegal},
		{"cas succeeds on its revision", []porcupine.Operation{cas(0, 7, 1, regOutput{Rev: 2, OK: true}, 0, 10), r(0, 7, 2, 20, 30)}, porcupine.Ok},
		{"cas refused although the revision matched", []porcupine.Operation{cas(0, 7, 1, regOutput{}, 0, 10)}, porcupine.Illegal},
		{"cas applied on a stale revision", []porcupine.Operation{w(0, 5, 2, 0, 10), cas(0, 7, 1, regOutput{Rev: 3, OK: true}, 20, 30)}, porcupine.Illegal},
		{"unknown write seen later", []porcupine.Operation{cas(0, 7, 1, unknown, 0, unknownReturn), r(0, 7, 2, 20, 30)}, porcupine.Ok},
		{"unknown write never seen", []porcupine.Operation{w(0, 7, 0, 0, unknownReturn), r(0, 0, 1, 20, 30)}, porcupine.Ok},
		{"keys are independent", []porcupine.Operation{w(0, 5, 2, 0, 10), r(1, 0, 1, 20, 30)}, porcupine.Ok},
		{"read of a value nobody wrote", []porcupine.Operation{r(0, 9, 2, 0, 10)}, porcupine.Illegal},
	}
	for _, tc := range tests {
		for i := range tc.ops {
			if tc.ops[i].Input.(regInput).Kind == opWrite && tc.ops[i].Return == unknownReturn {
				tc.ops[i].Output = unknown
			}
		}
		if got := porcupine.CheckOperationsTimeout(registerModel(regState{Value: 0, Rev: 1}), tc.ops, 0); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestResolveUnknown(t *testing.T) {
	app := newApplied()
	app.record(0, 0, 2, 11)
	ops := []porcupine.Operation{
		{Input: regInput{Key: 0, Kind: opWrite, Value: 11}, Output: regOutput{Unknown: true}, Return: unknownReturn},
		{Input: regInput{Key: 0, Kind: opCAS, Value: 12, Expect: 1}, Output: regOutput{Unknown: true}, Return: unknownReturn},
		{Input: regInput{Key: 0, Kind: opRead}, Output: regOutput{Value: 11, Rev: 2, OK: true}, Call: 5, Return: 6},
	}
	out, applied, dropped, errs := app.resolve(ops)
	if applied != 1 || dropped != 1 || len(errs) != 0 || len(out) != 2 {
		t.Fatalf("resolve: applied %d dropped %d errs %v, %d ops", applied, dropped, errs, len(out))
	}
	if o := out[0].Output.(regOutput); o.Unknown || o.Rev != 2 || out[0].Return != unknownReturn {
		t.Fatalf("resolved write: %+v return %d", o, out[0].Return)
	}
	app.record(1, 0, 2, 13)
	if len(app.divergences()) != 1 {
		t.Fatalf("divergent replicas not reported: %v", app.divergences())
	}
}
