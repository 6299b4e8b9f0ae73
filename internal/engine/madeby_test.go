package engine

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/svcnat/svcnat/internal/state"
)

// failRecord makes the next records fail as a full disk does, until the
// returned function is called.
func failRecord() (restore func()) {
	commitState = func(*state.Dir, *state.State, map[string]io.WriterTo) error {
		return errors.New("no space left on device")
	}
	return func() { commitState = (*state.Dir).Commit }
}

// A rollback or a destroy that finds the rules already right, the record
// behind them, is recorded as the rollback or destroy it is: "repair" is
// an apply's (it used to be recorded for any op).
func TestCatchUpOfRollbackAndDestroyIsNoRepair(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	h.mustApply(t, parse(t, web))      // 1
	h.mustApply(t, parse(t, web, dns)) // 2
	// The rules of generation 1, applied but not recorded.
	restore := failRecord()
	_, err := h.e.Apply(ctx, parse(t, web), "n1")
	restore()
	if err == nil {
		t.Fatal("an apply whose record failed succeeded")
	}
	res, err := h.e.RollbackTo(ctx, "SVCNAT", 1)
	if err != nil || !res.Repaired || res.Generation != 3 {
		t.Fatalf("rollback to the rules already live: %+v, %v", res, err)
	}
	if by := h.state(t).MadeBy; by != MadeByRollback {
		t.Fatalf("the rollback is recorded as made by %q", by)
	}
	restore = failRecord()
	_, err = h.e.Destroy(ctx, "SVCNAT")
	restore()
	if err == nil {
		t.Fatal("a destroy whose record failed succeeded")
	}
	if res, err = h.e.Destroy(ctx, "SVCNAT"); err != nil || !res.Repaired || res.Generation != 4 {
		t.Fatalf("destroy with nothing left: %+v, %v", res, err)
	}
	if by := h.state(t).MadeBy; by != MadeByDestroy {
		t.Fatalf("the destroy is recorded as made by %q", by)
	}
}

// A generation recorded with --adopt taking chains over says how many it
// took, in the history; the others say none.
func TestAdoptionIsRecorded(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	// The state directory is lost.
	h.e.StateDir = t.TempDir()
	h.e.Adopt = true
	res := h.mustApply(t, parse(t, web))
	if len(res.Adopted) == 0 || res.Generation != 1 {
		t.Fatalf("apply --adopt: %+v", res)
	}
	h.e.Adopt = false
	h.mustApply(t, parse(t, web, dns))
	hist, err := ReadHistory(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if g := hist.Generations; len(g) != 2 || g[0].Adopted != len(res.Adopted) || g[0].MadeBy != MadeByRepair || g[1].Adopted != 0 {
		t.Fatalf("history: %+v", g)
	}
}

// Without --netns, the state records the ip netns name of the namespace
// svcnat runs in (Host.RunsIn): --netns with that name is the same one.
func TestNamespaceSvcnatRunsInIsRecordedByName(t *testing.T) {
	h := newHost(t)
	h.e.RunsIn = "svcnat-a"
	h.mustApply(t, parse(t, web))
	if ns := h.state(t).Namespace; ns == nil || ns.Name != "svcnat-a" {
		t.Fatalf("namespace recorded: %+v", ns)
	}
	h.e.NetNS = "svcnat-a"
	h.mustApply(t, parse(t, web, dns))
	h.e.NetNS, h.e.RunsIn = "", "svcnat-b"
	var ne *NamespaceError
	if _, err := h.e.Apply(context.Background(), parse(t, web), "n1"); !errors.As(err, &ne) || ne.Recorded != "svcnat-a" || ne.Current != "svcnat-b" {
		t.Fatalf("apply in another namespace svcnat runs in: %v", err)
	}
}
