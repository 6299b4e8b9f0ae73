package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// A state directory of another network namespace refuses plan -destroy
// (exit 1, reason other_namespace) and the apply of a destroy plan saved
// there, as destroy refuses it: nothing changes, and the record keeps its
// namespace (it used to record a "repair" that owned nothing, after which
// the state directory refused its own live chains).
func TestDestroyPlanOfAnotherNamespaceIsRefused(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	before, gen := h.rules(), h.generation()
	says := "(iptables-nft backend), and this destroy works in network namespace svcnat-other"
	out, errs, code := h.run("--netns", "svcnat-other", "plan", "-destroy", "--detailed-exitcode")
	if code != ExitError || !strings.Contains(errs, says) {
		t.Fatalf("plan -destroy in another namespace: exit %d\n%s%s", code, out, errs)
	}
	out, _, code = h.run("--netns", "svcnat-other", "plan", "-destroy", "--json")
	ref, _ := planDoc(t, out)["refusal"].(map[string]any)
	if code != ExitError || ref == nil || ref["reason"] != "other_namespace" {
		t.Fatalf("plan -destroy --json in another namespace: exit %d, refusal %v", code, ref)
	}
	// A destroy plan saved where it is the state directory's namespace,
	// applied in another.
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	h.must(ExitOK, "plan", "-destroy", "-out", planFile)
	out, errs, code = h.run("--netns", "svcnat-other", "apply", planFile)
	if code != ExitError || !strings.Contains(errs, says) {
		t.Fatalf("apply of a destroy plan in another namespace: exit %d\n%s%s", code, out, errs)
	}
	if h.rules() != before || h.generation() != gen {
		t.Fatal("a refused destroy plan changed something")
	}
	// The state directory still owns its chains where they are.
	h.must(ExitOK, "plan", "--detailed-exitcode")
	h.must(ExitOK, "apply", planFile)
}
