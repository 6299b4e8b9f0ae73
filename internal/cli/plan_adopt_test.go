package cli

import (
	"strings"
	"testing"
)

// plan --adopt says which chains the apply would take over, and exits 2
// with --detailed-exitcode even when the rules need no change: the
// record does. plan --json lists them under adopting.
func TestPlanAdoptShowsTheAdoption(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	h.stateDir = t.TempDir() // the state directory is lost
	out := h.must(ExitChanges, "plan", "--adopt", "--detailed-exitcode")
	if !strings.Contains(out, "Adopting: 11 chains svcnat did not record") || !strings.Contains(out, "  IPv4 nat SVCNAT-SERVICES\n") {
		t.Fatalf("plan --adopt:\n%s", out)
	}
	out = h.must(ExitOK, "plan", "--adopt", "--json")
	adopting, _ := planDoc(t, out)["adopting"].([]any)
	if len(adopting) != 11 {
		t.Fatalf("plan --adopt --json: adopting %v", adopting)
	}
	if first, _ := adopting[0].(map[string]any); first["family"] != "ipv4" || first["table"] != "nat" || first["chain"] == nil {
		t.Fatalf("plan --adopt --json: adopting %v", adopting)
	}
	// Without --adopt nothing is adopted: the plan is refused instead.
	out, _, code := h.run("plan", "--json")
	if adopting, _ := planDoc(t, out)["adopting"].([]any); code != ExitError || adopting == nil || len(adopting) != 0 {
		t.Fatalf("plan --json without --adopt: exit %d, adopting %v", code, adopting)
	}
	if out := h.must(ExitOK, "apply", "-auto-approve", "--adopt"); !strings.Contains(out, "Adopted 11 chains") {
		t.Fatalf("apply --adopt:\n%s", out)
	}
	// Once adopted, nothing is left to adopt.
	h.must(ExitOK, "plan", "--adopt", "--detailed-exitcode")
}
