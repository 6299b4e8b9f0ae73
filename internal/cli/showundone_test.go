package cli

import (
	"net"
	"strings"
	"testing"
)

// After an apply whose probe failed was rolled back, show says that the
// last apply was undone and why, as it says of a revert; --json too. An
// apply that records a generation clears it.
func TestShowSaysTheLastApplyWasUndone(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "tcp://" + closed.Addr().String()
	closed.Close()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	if _, errs, code := h.run("apply", "-auto-approve", "--probe", down, "--probe-timeout", "100ms"); code != ExitError || !strings.Contains(errs, "probe "+down) {
		t.Fatalf("apply with a failing probe: exit %d\n%s", code, errs)
	}
	out := h.must(ExitOK, "show")
	if !strings.Contains(out, "Generation 1 applied ") ||
		!strings.Contains(out, "\nThe last apply was undone at ") || !strings.Contains(out, " (rolled back: probe "+down+" failed") ||
		!strings.Contains(out, "svcnat reconcile does not apply its configuration (sha256:") {
		t.Fatalf("show after a failed probe:\n%s", out)
	}
	out, errs, code := h.run("--json", "show")
	doc := planDoc(t, out)
	undone, _ := doc["undone"].(map[string]any)
	if code != ExitOK || errs != "" || undone == nil || undone["generation"] != 0.0 ||
		!strings.HasPrefix(undone["config_digest"].(string), "sha256:") || !strings.HasPrefix(undone["reason"].(string), "rolled back: probe "+down) ||
		undone["at"] == "" {
		t.Fatalf("show --json after a failed probe: exit %d, undone %v\n%s", code, doc["undone"], errs)
	}

	h.must(ExitOK, "apply", "-auto-approve")
	if out := h.must(ExitOK, "show"); strings.Contains(out, "undone") {
		t.Fatalf("show after an apply that went through:\n%s", out)
	}
	if doc := planDoc(t, h.must(ExitOK, "--json", "show")); doc["undone"] != nil {
		t.Fatalf("show --json after an apply that went through: undone %v", doc["undone"])
	}
}
