package iptables

import (
	"fmt"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

func jump(chain, to string) backend.Rule { return backend.Rule{Chain: chain, Args: []string{"-j", to}} }

// testChanges: a built-in chain's jumps, two services' chains created
// (SVC jumping to its SEPs), one chain changed and one deleted.
func testChanges() []backend.ChainChange {
	return []backend.ChainChange{
		{Table: "nat", Chain: "PREROUTING", Action: backend.Update, Builtin: true, After: []backend.Rule{jump("PREROUTING", "X-SERVICES")}},
		{Table: "nat", Chain: "X-SEP-A1", Action: backend.Create},
		{Table: "nat", Chain: "X-SEP-A2", Action: backend.Create},
		{Table: "nat", Chain: "X-SEP-B1", Action: backend.Create},
		{Table: "nat", Chain: "X-SERVICES", Action: backend.Update, After: []backend.Rule{jump("X-SERVICES", "X-SVC-A"), jump("X-SERVICES", "X-SVC-B")}},
		{Table: "nat", Chain: "X-SVC-A", Action: backend.Create, After: []backend.Rule{jump("X-SVC-A", "X-SEP-A1"), jump("X-SVC-A", "X-SEP-A2")}},
		{Table: "nat", Chain: "X-SVC-B", Action: backend.Create, After: []backend.Rule{jump("X-SVC-B", "X-SEP-B1")}},
		{Table: "nat", Chain: "X-SVC-OLD", Action: backend.Delete},
	}
}

// Staged transactions create only new chains, each after the chains it
// jumps to, so that every batch loads on its own; the final one writes the
// rest and none of the staged chains again.
func TestTransactionsStageCreationsInLoadableBatches(t *testing.T) {
	changes := testChanges()
	stages, final := transactions(backend.IPv4, changes, 2)
	if len(stages) != 3 {
		t.Fatalf("%d stages of 5 created chains in batches of 2", len(stages))
	}
	made := map[string]bool{}
	for i, tx := range stages {
		if tx.Family != backend.IPv4 || len(tx.Changes) > 2 {
			t.Fatalf("stage %d: %+v", i, tx)
		}
		for _, c := range tx.Changes {
			if c.Action != backend.Create || c.Builtin {
				t.Fatalf("stage %d writes %s, which it does not create", i, c.Chain)
			}
			for _, r := range c.After {
				if !made[r.Target()] {
					t.Fatalf("stage %d creates %s before %s, which it jumps to", i, c.Chain, r.Target())
				}
			}
			made[c.Chain] = true
		}
	}
	var got []string
	for _, c := range final.Changes {
		got = append(got, c.Chain)
	}
	if want := "[PREROUTING X-SERVICES X-SVC-OLD]"; fmt.Sprint(got) != want {
		t.Fatalf("final transaction writes %s, want %s", got, want)
	}
}

// Without staging, or when the creations fit in one batch, everything is
// in the final transaction: built-in chains first, created chains after
// their targets, then the rest.
func TestTransactionsWithoutStaging(t *testing.T) {
	for _, batch := range []int{backend.NoStaging, 0, 5} {
		stages, final := transactions(backend.IPv6, testChanges(), batch)
		if len(stages) != 0 || final.Family != backend.IPv6 || len(final.Changes) != 8 {
			t.Fatalf("batch %d: %d stages, final %+v", batch, len(stages), final)
		}
		pos := map[string]int{}
		for i, c := range final.Changes {
			pos[c.Chain] = i
		}
		if pos["PREROUTING"] != 0 || pos["X-SEP-A1"] > pos["X-SVC-A"] || pos["X-SEP-B1"] > pos["X-SVC-B"] || pos["X-SVC-OLD"] != 7 {
			t.Fatalf("batch %d: order %v", batch, pos)
		}
	}
}
