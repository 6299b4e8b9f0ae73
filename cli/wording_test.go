package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// A saved plan applied a second time is not "stale" with a diff of zero
// changes: it says that the plan was already applied, and changes
// nothing.
func TestSavedPlanAppliedTwiceSaysItWasApplied(t *testing.T) {
	h := newFakeHost(t)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitOK, "plan", "-out", planFile)
	h.must(ExitOK, "apply", planFile)
	gen, before := h.generation(), h.rules()
	out, errs, code := h.run("apply", planFile)
	want := "svcnat: error: " + planFile + ": the plan was already applied: the live rules are the ones it wants; nothing was changed\n"
	if code != ExitError || !strings.HasPrefix(errs, want) || strings.Contains(errs, "Changed:") || strings.Contains(errs, "changed since") ||
		!strings.Contains(errs, "svcnat: hint: ") || h.rules() != before || h.generation() != gen {
		t.Fatalf("a saved plan applied twice: exit %d\n%s%s\nwant stderr to begin\n%s", code, out, errs, want)
	}
}
