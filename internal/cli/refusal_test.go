package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// planDoc decodes plan --json as a program reading the README would.
func planDoc(t *testing.T, out string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan --json is not one JSON document: %v\n%s", err, out)
	}
	return doc
}

// refusedLikeApply checks that plan reports the refusal apply makes:
// exit 1 (also with --detailed-exitcode), the plan, then apply's error and
// hint; with --json the refusal in the document, and exit 1; and that
// apply does refuse, with the same words, changing nothing.
func refusedLikeApply(t *testing.T, h *fakeHost, reason, says, hint string) {
	t.Helper()
	out, errs, code := h.run("plan", "--detailed-exitcode")
	// plan changes nothing, whatever happens: it does not say so (readOnly).
	if code != ExitError || !strings.Contains(out, "Plan: ") ||
		!strings.Contains(errs, "svcnat: error: svcnat apply would refuse this plan: "+readOnlyMessage(says)) || !strings.Contains(errs, "svcnat: hint: "+hint) {
		t.Fatalf("plan --detailed-exitcode: exit %d, want 1\n%s%s", code, out, errs)
	}
	if strings.Contains(errs, "nothing was changed") {
		t.Fatalf("plan, which changes nothing, says so:\n%s", errs)
	}
	out, errs, code = h.run("plan", "--json")
	doc := planDoc(t, out)
	ref, _ := doc["refusal"].(map[string]any)
	if code != ExitError || doc["applyable"] != false || ref == nil || ref["reason"] != reason ||
		!strings.Contains(ref["message"].(string), readOnlyMessage(says)) || !strings.Contains(ref["hint"].(string), hint) {
		t.Fatalf("plan --json: exit %d, want 1, refusal %v, applyable %v\n%s", code, doc["refusal"], doc["applyable"], errs)
	}
	before, gen := h.rules(), h.generation()
	_, errs, code = h.run("apply", "-auto-approve")
	if code != ExitError || !strings.Contains(errs, "svcnat: error: "+says) || !strings.Contains(errs, "svcnat: hint: "+hint) {
		t.Fatalf("apply: exit %d\n%s", code, errs)
	}
	if h.rules() != before || h.generation() != gen {
		t.Fatal("a refused apply changed something")
	}
}

// After chain_prefix changes, plan exits 1 with apply's refusal instead of
// showing an ordinary plan.
func TestPlanReportsAChangedPrefixAsApplyDoes(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"KUBE\"\n}\n")
	refusedLikeApply(t, h, "prefix_changed", "chain_prefix changed from SVCNAT to KUBE",
		"run svcnat destroy to remove the SVCNAT-* chains first")
}

func TestPlanReportsAPendingApplyAsApplyDoes(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	id := pendingID(t, h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h"))
	writeFile(t, h.config, "nginx.hcl", nginx)
	refusedLikeApply(t, h, "pending_confirmation", "apply "+id+" (generation 2) awaits confirmation until",
		"keep it with svcnat confirm "+id)
	h.must(ExitOK, "confirm", id)
	h.watcher(0)
	h.must(ExitChanges, "plan", "--detailed-exitcode")
}

func TestPlanReportsABlockedDeletionAsApplyDoes(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	pinEndpoint(t, h)
	writeFile(t, h.config, "nginx.hcl", strings.Replace(nginx, "10.64.1.2", "10.64.1.9", 1))
	refusedLikeApply(t, h, "blocked", "rules svcnat does not own jump into chains this apply would delete",
		"remove or change those rules first")
}

// --backend naming the backend that does not hold svcnat's chains is
// refused by plan as by apply: both open the host the same way.
func TestPlanRefusesTheOtherBackendAsApplyDoes(t *testing.T) {
	h := newFakeHost(t)
	h.openErr = func(o engine.HostOptions) error {
		if o.Backend == iptables.Auto {
			return nil
		}
		return &iptables.OtherBackendError{Asked: o.Backend, Detection: iptables.Detection{Backend: iptables.Legacy, Reason: "svcnat chains are in the legacy backend"}}
	}
	h.must(ExitOK, "apply", "-auto-approve")
	for _, cmd := range [][]string{{"plan", "--detailed-exitcode"}, {"plan", "--json"}, {"apply", "-auto-approve"}} {
		out, errs, code := h.run(append(cmd, "--backend", "nft")...)
		if code != ExitError || out != "" || !strings.Contains(errs, "svcnat: error: --backend iptables-nft, but svcnat's chains are in the other backend") ||
			!strings.Contains(errs, "svcnat: hint: use --backend auto") {
			t.Fatalf("%s --backend nft: exit %d\n%s%s", strings.Join(cmd, " "), code, out, errs)
		}
	}
}

// A plan against a saved dump is what CI runs: it exits 0 or 2 as usual,
// and says that apply cannot commit it; its JSON says it is not applyable.
func TestPlanAgainstADumpSaysApplyCannotCommitIt(t *testing.T) {
	out, errs, code := planOffline(t, "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "--detailed-exitcode")
	if code != ExitChanges || !strings.Contains(out, "Note: this plan was made against a saved iptables-save dump") || errs != "" {
		t.Fatalf("plan against a dump: exit %d\n%s%s", code, out, errs)
	}
	out, _, code = planOffline(t, "", "--json")
	if doc := planDoc(t, out); code != ExitOK || doc["applyable"] != false || doc["refusal"] != nil {
		t.Fatalf("plan --json against a dump: exit %d, applyable %v, refusal %v", code, doc["applyable"], doc["refusal"])
	}
	// A saved plan of a dump could never be applied: refused at once.
	_, errs, code = planOffline(t, "", "-out", t.TempDir()+"/x.plan")
	if code != ExitError || !strings.Contains(errs, "-out") || !strings.Contains(errs, "svcnat: hint: ") {
		t.Fatalf("plan -out against a dump: exit %d\n%s", code, errs)
	}
}

func TestPlanThatApplyTakesIsApplyable(t *testing.T) {
	h := newFakeHost(t)
	out, _, code := h.run("plan", "--json")
	if doc := planDoc(t, out); code != ExitOK || doc["applyable"] != true || doc["refusal"] != nil {
		t.Fatalf("plan --json: exit %d, applyable %v, refusal %v", code, doc["applyable"], doc["refusal"])
	}
}
