package cli

import (
	"strings"
	"testing"
)

// refusedIntro is how the plan view begins a plan that cmd would refuse.
func refusedIntro(cmd string) string {
	return "svcnat " + cmd + " would refuse this plan (see the error below); it would perform the following actions (backend "
}

// A plan that apply would refuse does not read as one it takes: plan and
// apply itself, before it refuses, say so where the plan begins, and an
// empty one is no "match"; plan -destroy names destroy. The JSON
// document is as it was (refusal, applyable).
func TestRefusedPlanSaysSoInItsIntro(t *testing.T) {
	h := newFakeHost(t)
	h.runtimeDir = t.TempDir()
	first := h.stateDir
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"KUBE\"\n}\n")
	for _, cmd := range [][]string{{"plan"}, {"apply", "-auto-approve"}} {
		out, errs, code := h.run(cmd...)
		if code != ExitError || !strings.Contains(out, refusedIntro("apply")) || strings.Contains(out, "svcnat will perform") ||
			!strings.Contains(errs, "chain_prefix changed from SVCNAT to KUBE") {
			t.Errorf("%s with a changed prefix: exit %d\n%s%s", cmd[0], code, out, errs)
		}
	}
	writeFile(t, h.config, "settings.hcl", "")

	// Another state directory, with the rules as they are: nothing to
	// change, and still refused.
	h.stateDir = t.TempDir()
	for _, cmd := range [][]string{{"plan"}, {"apply", "-auto-approve"}} {
		out, errs, code := h.run(cmd...)
		if code != ExitError || out != "No changes to the rules, but svcnat apply would refuse to run here (see the error below).\n" ||
			!strings.Contains(errs, "written by svcnat with state directory "+first) {
			t.Errorf("%s from another state directory: exit %d\n%s%s", cmd[0], code, out, errs)
		}
	}
	h.stateDir = first

	// plan -destroy names destroy, in its intro and in its Blocked list.
	pinEndpoint(t, h)
	out, errs, code := h.run("plan", "-destroy")
	if code != ExitError || !strings.Contains(out, refusedIntro("destroy")) || !strings.Contains(out, "Blocked: svcnat destroy will refuse this plan") ||
		strings.Contains(out, "svcnat apply") {
		t.Errorf("plan -destroy, blocked: exit %d\n%s%s", code, out, errs)
	}
	out, _, code = h.run("plan", "-destroy", "--json")
	if doc := planDoc(t, out); code != ExitError || doc["applyable"] != false {
		t.Errorf("plan -destroy --json: exit %d, applyable %v", code, doc["applyable"])
	}
}

// A plan apply takes, and one made against a dump (for review: the note
// says apply cannot commit it), begin as plans do.
func TestPlanThatApplyTakesReadsAsAPlan(t *testing.T) {
	h := newFakeHost(t)
	if out := h.must(ExitOK, "plan"); !strings.HasPrefix(out, "svcnat will perform the following actions (backend ") {
		t.Errorf("plan:\n%s", out)
	}
	out, _, _ := planOffline(t, "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
	if !strings.HasPrefix(out, "svcnat will perform the following actions (backend ") {
		t.Errorf("plan against a dump:\n%s", out)
	}
}
