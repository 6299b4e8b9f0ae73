package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// refusedWith fails unless res is a refusal with reason whose hint
// holds hint.
func refusedWith(t *testing.T, what string, res map[string]any, reason, hint string) {
	t.Helper()
	e, _ := res["error"].(map[string]any)
	if res["outcome"] != "refused" || res["generation"] != nil || e == nil || e["reason"] != reason {
		t.Errorf("%s: outcome %v, error %v; want refused with reason %s", what, res["outcome"], res["error"], reason)
		return
	}
	if h, _ := e["hint"].(string); !strings.Contains(h, hint) {
		t.Errorf("%s: hint %q, want one with %q", what, e["hint"], hint)
	}
}

// Every refusal of a saved plan is a refused document with its own
// reason and the hint stderr prints: a plan file changed after it was
// made, a plan already applied, a stale plan.
func TestSavedPlanRefusalsJSON(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitOK, "plan", "-out", planFile)
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "edited.plan")
	if err := os.WriteFile(edited, []byte(strings.Replace(string(data), "10.64.1", "10.65.1", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, res := h.result(ExitError, "apply", edited)
	refusedWith(t, "an edited plan", res, "plan_unusable", "make the plan again")

	h.must(ExitOK, "apply", planFile)
	_, res = h.result(ExitError, "apply", planFile)
	refusedWith(t, "a plan already applied", res, "already_applied", "svcnat plan shows")

	writeFile(t, h.config, "nginx.hcl", nginx)
	h.must(ExitOK, "plan", "-out", planFile)
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n-A SVCNAT-SERVICES -d 1.2.3.4/32 -j RETURN\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	_, res = h.result(ExitError, "apply", planFile)
	refusedWith(t, "a stale plan", res, "stale", "run svcnat plan again")
}

// rollback --to a generation it cannot go to, and a state directory
// another user could change, are refusals with a reason and the hint.
func TestRollbackAndStateDirRefusalsJSON(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.must(ExitOK, "apply", "-auto-approve")
	_, res := h.result(ExitError, "rollback", "-auto-approve", "--to", "2")
	refusedWith(t, "rollback --to the current generation", res, "nothing_to_roll_back", "svcnat history lists")
	_, res = h.result(ExitError, "rollback", "-auto-approve", "--to", "99")
	refusedWith(t, "rollback --to a generation not kept", res, "generation_gone", "svcnat history lists")

	if err := os.Chmod(h.stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"apply", "-auto-approve"}, {"destroy", "-auto-approve"}, {"confirm"}} {
		_, res := h.result(ExitError, args...)
		refusedWith(t, strings.Join(args, " ")+" with an untrusted state directory", res, "untrusted_state_dir", "chmod 700 "+h.stateDir)
	}
}

// show --json answers an error with a document too: its format_version
// and the error, with the hint stderr prints.
func TestShowJSONError(t *testing.T) {
	h := newFakeHost(t)
	missing := filepath.Join(t.TempDir(), "missing.plan")
	// A saved plan changed after it was made: the reason apply gives it.
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	edited := filepath.Join(t.TempDir(), "edited.plan")
	h.must(ExitChanges, "plan", "--detailed-exitcode", "-out", edited)
	data, err := os.ReadFile(edited)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(edited, []byte(strings.Replace(string(data), "10.64.1.3", "10.64.1.9", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		reason string
		hint   string
		chmod  bool
	}{
		{[]string{"show", "--json", missing}, "other", "", false},
		{[]string{"show", "--json", edited}, "plan_unusable", "make the plan again", false},
		{[]string{"show", "--json"}, "untrusted_state_dir", "chmod 700", true},
	} {
		if c.chmod {
			if err := os.Chmod(h.stateDir, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		out, errs, code := h.run(c.args...)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: ") {
			t.Fatalf("%v: exit %d\n%s", c.args, code, errs)
		}
		doc := oneDoc(t, c.args, out)
		e, _ := doc["error"].(map[string]any)
		if doc["format_version"] != ShowJSONVersion || len(doc) != 2 || e == nil || e["reason"] != c.reason ||
			!strings.Contains(errs, e["message"].(string)) {
			t.Errorf("%v: document %v\nstderr: %s", c.args, doc, errs)
			continue
		}
		if h, _ := e["hint"].(string); !strings.Contains(h, c.hint) || c.hint != "" && !strings.Contains(errs, "svcnat: hint: "+h) {
			t.Errorf("%v: hint %v\nstderr: %s", c.args, e["hint"], errs)
		}
	}
}
