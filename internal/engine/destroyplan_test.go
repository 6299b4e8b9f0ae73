package engine

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/planner"
)

// A destroy plan keeps its mark through its file, which admits its empty
// desired rules; a plan file marked destroy that wants rules is refused.
// An apply plan's file holds no mark, so its digest is what it was before
// the mark existed.
func TestDestroyPlanFile(t *testing.T) {
	h := newHost(t)
	if _, err := h.e.Apply(t.Context(), parse(t, web), "n1"); err != nil {
		t.Fatal(err)
	}
	p, err := h.e.DestroyPlan("SVCNAT")
	if err != nil {
		t.Fatal(err)
	}
	data, err := planner.MarshalPlan(p, "")
	if err != nil {
		t.Fatal(err)
	}
	saved, _, err := planner.UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		t.Fatalf("a destroy plan file is refused: %v", err)
	}
	if !saved.Destroy || saved.Summary() != p.Summary() || saved.Summary().Remove == 0 {
		t.Fatalf("read back: destroy %v, %+v, want %+v", saved.Destroy, saved.Summary(), p.Summary())
	}
	_, apply := savedWeb(t, h)
	if strings.Contains(string(apply), `"destroy"`) {
		t.Fatalf("an apply plan's file names destroy:\n%s", apply)
	}
	marked, err := planner.ResealPlan([]byte(strings.Replace(string(apply), `"digest"`, `"destroy": true, "digest"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := planner.UnmarshalPlan(marked, kernel.Pure); err == nil || !strings.Contains(err.Error(), "a destroy plan that wants rules") {
		t.Fatalf("a destroy plan that wants rules: %v", err)
	}
}
