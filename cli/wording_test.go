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

// destroy with nothing to destroy says so: it has no configuration that
// the live rules could "match".
func TestDestroyWithNothingToDoSaysSo(t *testing.T) {
	h := newFakeHost(t)
	for _, args := range [][]string{{"destroy", "-auto-approve"}, {"destroy"}} {
		out, errs, code := h.run(args...)
		if want := "No changes. Nothing to destroy: no SVCNAT-* chains or jumps are live.\n"; code != ExitOK || out != want || errs != "" {
			t.Errorf("svcnat %v with nothing applied: exit %d\n%s%s\nwant\n%s", args, code, out, errs, want)
		}
	}
}

// Without a terminal, only apply is pointed at a saved plan: rollback and
// destroy have none to apply.
func TestConfirmationHintFitsTheCommand(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	_, errs, code := h.run("apply")
	if want := "svcnat: hint: review the plan and run again with -auto-approve, or apply a saved plan (plan -out FILE)\n"; code != ExitError || !strings.HasSuffix(errs, want) {
		t.Errorf("apply without a terminal: exit %d\n%s", code, errs)
	}
	h.must(ExitOK, "apply", "-auto-approve")
	for _, cmd := range []string{"rollback", "destroy"} {
		_, errs, code := h.run(cmd)
		if want := "svcnat: hint: review the plan and run again with -auto-approve\n"; code != ExitError || !strings.HasSuffix(errs, want) {
			t.Errorf("%s without a terminal: exit %d\n%s\nwant it to end\n%s", cmd, code, errs, want)
		}
	}
}
