package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// Each generation records what made it: an apply, a saved plan, a
// rollback, a destroy, the reconcile daemon, the revert of an apply not
// confirmed, and an apply that only caught the record up (a repair).
func TestGenerationsRecordWhatMadeThem(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	h.mustApply(t, parse(t, web)) // 1 apply
	p, err := h.e.Plan(parse(t, web, dns), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.ApplySaved(ctx, p, ConfigDigest(parse(t, web, dns))); err != nil { // 2 saved plan
		t.Fatal(err)
	}
	if _, err := h.e.Rollback(ctx, "SVCNAT"); err != nil { // 3 rollback
		t.Fatal(err)
	}
	daemon := *h.e
	daemon.Origin = OriginReconcile
	if _, err := daemon.Apply(ctx, parse(t, dns), "n1"); err != nil { // 4 reconcile
		t.Fatal(err)
	}
	if _, err := h.e.Destroy(ctx, "SVCNAT"); err != nil { // 5 destroy
		t.Fatal(err)
	}
	// The rules of web, applied but not recorded (a full disk): 6 repair.
	commitState = func(*state.Dir, *state.State, map[string]io.WriterTo) error {
		return errors.New("no space left on device")
	}
	_, err = h.e.Apply(ctx, parse(t, web), "n1")
	commitState = (*state.Dir).Commit
	if err == nil {
		t.Fatal("an apply whose record failed succeeded")
	}
	if res := h.mustApply(t, parse(t, web)); !res.Repaired || res.Generation != 6 {
		t.Fatalf("the record behind the rules: %+v", res)
	}
	var got []string
	for _, g := range h.state(t).Generations {
		got = append(got, g.MadeBy)
	}
	want := []string{"apply", "saved_plan", "rollback", "reconcile", "destroy", "repair"}
	if !slices.Equal(got, want) {
		t.Fatalf("made by %q, want %q", got, want)
	}
	if st := h.state(t); st.MadeBy != "repair" {
		t.Fatalf("the state says the current generation was made by %q", st.MadeBy)
	}
}

// A revert is recorded as one.
func TestRevertIsRecordedAsMadeByRevert(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	st := h.state(t)
	d, _ := state.Open(h.e.StateDir)
	st.Pending = &state.Pending{ID: "abc123", Status: state.PendingAwaiting, Generation: 1, Previous: 0, Prefix: "SVCNAT", Backend: "nft"}
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Revert(context.Background(), "abc123", "declined"); err != nil {
		t.Fatal(err)
	}
	if g := h.state(t).Generations; len(g) != 2 || g[1].MadeBy != "revert" {
		t.Fatalf("generations %+v", g)
	}
}

// history lists every kept generation: what made it, its counts, and
// which is current; a state directory written before svcnat recorded
// what made a generation reads as "" (shown as "-").
func TestReadHistory(t *testing.T) {
	h := newHost(t)
	if hist, err := ReadHistory(filepath.Join(h.e.StateDir, "none")); err != nil || len(hist.Generations) != 0 || hist.Current != 0 {
		t.Fatalf("history of no state directory: %+v, %v", hist, err)
	}
	if _, err := os.Stat(filepath.Join(h.e.StateDir, "none")); !os.IsNotExist(err) {
		t.Fatal("history created the state directory")
	}
	h.twoGenerations(t)
	if _, err := h.e.Rollback(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	hist, err := ReadHistory(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if hist.Current != 3 || len(hist.Generations) != 3 {
		t.Fatalf("history %+v", hist)
	}
	live := h.inventory(t)
	for i, g := range hist.Generations {
		if g.Current != (i == 2) {
			t.Errorf("generation %d current %v", g.Generation, g.Current)
		}
		if g.Chains <= 0 || g.Rules <= g.Chains {
			t.Errorf("generation %d: %d chains, %d rules", g.Generation, g.Chains, g.Rules)
		}
	}
	if g := hist.Generations[2]; g.Chains != live.Chains || g.Rules != live.Rules || g.MadeBy != "rollback" {
		t.Fatalf("current generation %+v; live: %d chains, %d rules", g, live.Chains, live.Rules)
	}
	if g := hist.Generations[1]; g.Chains <= hist.Generations[0].Chains {
		t.Fatalf("web and dns have no more chains than web: %+v", hist.Generations)
	}
}

// rollback --to N returns to generation N, plans like any apply, asks,
// and records a new generation.
func TestRollbackToAnyKeptGeneration(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	h.mustApply(t, parse(t, web))
	one := h.text(t)
	h.mustApply(t, parse(t, web, dns))
	h.mustApply(t, parse(t, dns))
	h.asked, h.planned = 0, nil
	res, err := h.e.RollbackTo(ctx, "SVCNAT", 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation != 4 || h.asked != 1 || len(h.planned) != 1 || h.planned[0].Rollback == nil ||
		h.planned[0].Rollback.From != 3 || h.planned[0].Rollback.To.Generation != 1 || h.planned[0].Plan.Empty() {
		t.Fatalf("result %+v, asked %d, planned %+v", res, h.asked, h.planned)
	}
	if h.text(t) != one {
		t.Fatalf("the rules are not generation 1's:\n%s", h.text(t))
	}
	st := h.state(t)
	first, _ := st.Info(1)
	if st.Generation != 4 || st.ConfigDigest != first.ConfigDigest || st.RulesDigest != first.RulesDigest || st.MadeBy != "rollback" {
		t.Fatalf("state %+v", st)
	}
}

// A generation the state directory no longer keeps (or never had) is
// refused with the list of those it keeps; so is the current one.
func TestRollbackToAGoneGeneration(t *testing.T) {
	h := newHost(t)
	h.e.Hooks.Approve = nil
	h.mustApply(t, parse(t, web))
	h.mustApply(t, parse(t, web, dns))
	d, _ := state.Open(h.e.StateDir)
	st := h.state(t)
	st.Generations = st.Generations[1:] // generation 1 was pruned
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	h.mustApply(t, parse(t, dns))
	rules := h.text(t)
	for _, gen := range []int64{1, 7, 3} {
		_, err := h.e.RollbackTo(context.Background(), "SVCNAT", gen)
		var gone *GenerationGoneError
		if !errors.As(err, &gone) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("rollback --to %d: %v", gen, err)
		}
		if gen != 3 && (!strings.Contains(err.Error(), "keeps generations 2, 3") || !slices.Equal(gone.Kept, []int64{2, 3})) {
			t.Fatalf("rollback --to %d does not list the kept generations: %v", gen, err)
		}
		if gen == 3 && (!strings.Contains(err.Error(), "generation 3 is the current generation") || !strings.Contains(err.Error(), "keeps generations 2, 3")) {
			t.Fatalf("rollback --to the current generation: %v", err)
		}
		h.unchanged(t, rules, 3)
	}
}

// inventory counts the owned live rules as show does.
func (h *testHost) inventory(t *testing.T) *backend.Inventory {
	t.Helper()
	live := map[backend.Family]*backend.Ruleset{}
	for _, f := range backend.Families {
		rs, err := h.fake.Save(f)
		if err != nil {
			t.Fatal(err)
		}
		live[f] = rs
	}
	return kernel.Pure("").Inventory("SVCNAT", live)
}
