package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestHandMadeChainIsNotInterrupted: one hand-made, unreferenced chain of
// the prefix beside a fresh state directory is no interrupted apply's:
// this state directory never noted it. plan and show do not call it
// interrupted, and the refusal names it as unrecorded; only a chain an
// apply of this state directory noted (applying.json) is interrupted.
func TestHandMadeChainIsNotInterrupted(t *testing.T) {
	h := newHost(t)
	h.restore(t, "*nat\n:SVCNAT-SEP-ABCDEFGHIJKLMNOP - [0:0]\nCOMMIT\n")
	p, err := h.e.Plan(parse(t, web), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Interrupted) != 0 {
		t.Fatalf("plan calls a hand-made chain interrupted: %v", p.Interrupted)
	}
	refusal, err := h.e.ApplyRefusal(p)
	var ue *UnrecordedError
	if err != nil || !errors.As(refusal, &ue) || !slices.Equal(ue.Chains, []string{"IPv4 nat SVCNAT-SEP-ABCDEFGHIJKLMNOP"}) {
		t.Fatalf("refusal: %v, %v", refusal, err)
	}
	s, err := h.e.Show("SVCNAT")
	if err != nil || len(s.Interrupted) != 0 {
		t.Fatalf("show: %v, interrupted %v", err, s.Interrupted)
	}
	dp, err := h.e.DestroyPlan("SVCNAT")
	if err != nil || len(dp.Interrupted) != 0 {
		t.Fatalf("plan -destroy: %v, interrupted %v", err, dp.Interrupted)
	}
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); !errors.As(err, &ue) {
		t.Fatalf("destroy: %v", err)
	}
}
