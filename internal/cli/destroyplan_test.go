package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plan -destroy shows what destroy would remove and changes nothing; its
// saved plan applies as a destroy: everything owned goes, the rest stays,
// and a generation is recorded.
func TestPlanDestroyOnTheFake(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	applied := h.rules()
	// plan -destroy needs no configuration once a prefix is recorded,
	// as destroy does.
	writeFile(t, h.config, "nginx.hcl", "this is { not HCL")
	out := h.must(ExitChanges, "plan", "-destroy", "--detailed-exitcode")
	for _, want := range []string{"- service default/nginx", "- chain SVCNAT-SERVICES", "Plan: 0 chains to add, "} {
		if !strings.Contains(out, want) {
			t.Fatalf("plan -destroy: no %q\n%s", want, out)
		}
	}
	if h.rules() != applied || h.generation() != 1 {
		t.Fatal("plan -destroy changed something")
	}
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	if out := h.must(ExitOK, "plan", "-destroy", "-out", planFile); !strings.Contains(out, "svcnat apply "+planFile) {
		t.Fatalf("plan -destroy -out:\n%s", out)
	}
	out = h.must(ExitOK, "apply", planFile)
	if !strings.Contains(out, "Destroy complete!") || !strings.Contains(out, "generation 2 recorded") ||
		strings.Contains(h.rules(), "SVCNAT") || !strings.Contains(h.rules(), "-A DOCKER -i docker0 -j RETURN") {
		t.Fatalf("apply of a destroy plan:\n%s\n%s", out, h.rules())
	}
	// The record says nothing is owned: any prefix may come next, as
	// after destroy.
	writeFile(t, h.config, "nginx.hcl", nginx)
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"KUBE\"\n}\n")
	h.must(ExitChanges, "plan", "--detailed-exitcode")
	// Nothing left to destroy: a plan without changes.
	h.must(ExitOK, "plan", "-destroy", "--detailed-exitcode")
}

// A destroy plan made against other live rules is refused, as any stale
// plan is, and changes nothing.
func TestStaleDestroyPlanIsRefused(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	h.must(ExitOK, "plan", "-destroy", "-out", planFile)
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.must(ExitOK, "apply", "-auto-approve")
	before := h.rules()
	out, errs, code := h.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "stale plan "+planFile) || h.rules() != before || h.generation() != 2 {
		t.Fatalf("stale destroy plan: exit %d, generation %d\n%s%s", code, h.generation(), out, errs)
	}
}

// plan -destroy refuses what destroy refuses: chains of the prefix this
// state directory never recorded; -adopt plans as destroy -adopt would.
func TestPlanDestroyRefusesAsDestroyDoes(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	applied := h.rules()
	other := newFakeHost(t)
	other.fake = h.fake
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	out, errs, code := other.run("plan", "-destroy", "--detailed-exitcode", "-out", planFile)
	if code != ExitError || !strings.Contains(errs, "svcnat: error: svcnat destroy would refuse this plan: ") ||
		!strings.Contains(errs, "svcnat: hint: ") {
		t.Fatalf("plan -destroy of chains never recorded: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(planFile); err == nil {
		t.Fatal("a refused destroy plan was saved")
	}
	_, derrs, _ := other.run("destroy", "-auto-approve")
	// The same refusal; only destroy, which could have changed something,
	// says that nothing was.
	said := strings.TrimPrefix(strings.SplitN(derrs, "\n", 2)[0], "svcnat: error: ")
	if !strings.Contains(errs, strings.Replace(said, "; nothing was changed", "", 1)) {
		t.Fatalf("plan -destroy and destroy refuse differently:\n%s\n%s", errs, derrs)
	}
	if h.rules() != applied {
		t.Fatal("a refused destroy changed the rules")
	}
	other.must(ExitChanges, "plan", "-destroy", "--adopt", "--detailed-exitcode")
}

// apply of a destroy plan refuses what destroy refuses under the lock: an
// apply awaiting confirmation.
func TestDestroyPlanRefusedWhileAnApplyAwaitsConfirmation(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	h.must(ExitOK, "plan", "-destroy", "-out", planFile)
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	id := pendingID(t, h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h"))
	before := h.rules()
	out, errs, code := h.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "apply "+id+" (generation 2) awaits confirmation") || h.rules() != before {
		t.Fatalf("destroy plan with an apply pending: exit %d\n%s%s", code, out, errs)
	}
	h.must(ExitOK, "confirm", id)
	h.watcher(0)
}

// A foreign rule jumping into an owned chain blocks plan -destroy, as it
// blocks destroy; --json says so in the document.
func TestPlanDestroyBlocked(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	pinEndpoint(t, h)
	out, errs, code := h.run("plan", "-destroy", "--detailed-exitcode")
	if code != ExitError || !strings.Contains(out, "Blocked:") ||
		!strings.Contains(errs, "svcnat: error: svcnat destroy would refuse this plan: rules svcnat does not own jump into chains this destroy would delete") {
		t.Fatalf("blocked plan -destroy: exit %d\n%s%s", code, out, errs)
	}
	out, _, code = h.run("plan", "-destroy", "--json")
	doc := planDoc(t, out)
	if ref, _ := doc["refusal"].(map[string]any); code != ExitError || ref == nil || ref["reason"] != "blocked" || doc["applyable"] != false {
		t.Fatalf("blocked plan -destroy --json: exit %d\n%s", code, out)
	}
}
