package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// plan -destroy with nothing to remove says so in destroy's words, as
// destroy does: there is no configuration the live rules could match.
func TestPlanDestroyWithNothingToRemove(t *testing.T) {
	h := newFakeHost(t)
	want := "No changes. Nothing to destroy: no SVCNAT-* chains or jumps are live.\n"
	for _, args := range [][]string{{"plan", "-destroy"}, {"plan", "-destroy", "--detailed-exitcode"}, {"destroy", "-auto-approve"}} {
		out, errs, code := h.run(args...)
		if code != ExitOK || !strings.HasPrefix(out, want) || strings.Contains(out, "configuration") {
			t.Errorf("%s with nothing to remove: exit %d\n%s%s\nwant it to begin\n%s", strings.Join(args, " "), code, out, errs, want)
		}
	}
}

// plan against a dump with nothing to change speaks of the dump, not of
// live rules, and notes that apply cannot commit it, as it does for a
// plan with changes.
func TestPlanAgainstDumpWithNothingToChange(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	dump := writeFile(t, t.TempDir(), "dump", h.rules())
	note := "Note: this plan was made against a saved iptables-save dump, not this host's live rules: svcnat apply cannot commit it.\n"
	// run, not h.run: the fake host has no dump to read.
	out, errs, code := run(t, "plan", "--no-color", "-c", h.config, "--node", "n1", "--detailed-exitcode", "--iptables-save", dump)
	if want := "No changes. The rules in the dump match the configuration.\n\n" + note; code != ExitOK || out != want {
		t.Errorf("plan against a dump that matches: exit %d\n%s%s\nwant\n%s", code, out, errs, want)
	}
	empty := writeFile(t, t.TempDir(), "dump", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
	out, errs, code = run(t, "plan", "--no-color", "-c", h.config, "--node", "n1", "-destroy", "--detailed-exitcode", "--iptables-save", empty)
	if want := "No changes. Nothing to destroy: no SVCNAT-* chains or jumps are in the dump.\n\n" + note; code != ExitOK || out != want {
		t.Errorf("plan -destroy against a dump without svcnat's chains: exit %d\n%s%s\nwant\n%s", code, out, errs, want)
	}
}

// A stale destroy plan's hint makes a destroy plan again, not a plan of
// the configuration.
func TestStaleDestroyPlanHint(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	h.must(ExitOK, "plan", "-destroy", "-out", planFile)
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.must(ExitOK, "apply", "-auto-approve")
	_, errs, code := h.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "svcnat: hint: run svcnat plan -destroy again\n") {
		t.Fatalf("stale destroy plan: exit %d\n%s", code, errs)
	}
	// Applied already (by destroy): the hint is about destroy too.
	h.must(ExitOK, "plan", "-destroy", "-out", planFile)
	h.must(ExitOK, "destroy", "-auto-approve")
	_, errs, code = h.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "the plan was already applied") ||
		!strings.Contains(errs, "svcnat: hint: svcnat plan -destroy shows what destroy would remove now\n") {
		t.Fatalf("destroy plan applied already: exit %d\n%s", code, errs)
	}
}

// With the prefix KUBE where kube-proxy runs but no KUBE-* chain is in
// nat or filter, destroy and plan -destroy have nothing to remove and
// nothing to refuse; apply is refused in words that hold.
func TestKubeProxyWithNothingToDestroy(t *testing.T) {
	h := newFakeHost(t)
	if err := h.fake.Restore(backend.IPv4, []byte("*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"KUBE\"\n}\n")
	before := h.rules()
	want := "No changes. Nothing to destroy: no KUBE-* chains or jumps are live.\n"
	for _, args := range [][]string{{"plan", "-destroy", "--detailed-exitcode"}, {"destroy", "-auto-approve"}} {
		out, errs, code := h.run(args...)
		if code != ExitOK || !strings.HasPrefix(out, want) || strings.Contains(out+errs, "refuse") {
			t.Errorf("%s: exit %d\n%s%s\nwant it to begin\n%s", strings.Join(args, " "), code, out, errs, want)
		}
	}
	if h.rules() != before {
		t.Fatalf("destroy changed the rules:\n%s", h.rules())
	}
	_, errs, code := h.run("apply", "-auto-approve")
	if says := "svcnat: error: kube-proxy runs in this network namespace (IPv4 mangle KUBE-PROXY-CANARY): its KUBE-* chains are never svcnat's, and svcnat with chain_prefix KUBE would fight it over them; nothing was changed\n"; code != ExitError || !strings.HasPrefix(errs, says) {
		t.Errorf("apply: exit %d\n%s\nwant it to begin\n%s", code, errs, says)
	}
	if h.rules() != before {
		t.Fatalf("apply changed the rules:\n%s", h.rules())
	}
}

// show of a saved destroy plan with nothing to remove says so as plan
// -destroy did: a destroy plan has no configuration to match.
func TestShowEmptyDestroyPlan(t *testing.T) {
	h := newFakeHost(t)
	planFile := filepath.Join(t.TempDir(), "destroy.plan")
	h.must(ExitOK, "plan", "-destroy", "-out", planFile)
	out := h.must(ExitOK, "show", planFile)
	if !strings.Contains(out, "\nNo changes. Nothing to destroy: no SVCNAT-* chains or jumps are live.\n") || strings.Contains(out, "configuration.") {
		t.Fatalf("show of an empty destroy plan:\n%s", out)
	}
}

// A saved plan made before a destroy is stale, whatever it would do to
// the chains it saw: refused as stale, not as taking chains this state
// directory no longer records.
func TestSavedPlanAfterADestroyIsStale(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	planFile := filepath.Join(t.TempDir(), "web.plan")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.must(ExitChanges, "plan", "--detailed-exitcode", "-out", planFile)
	h.must(ExitOK, "destroy", "-auto-approve")
	_, errs, code := h.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "stale plan") || strings.Contains(errs, "did not record") {
		t.Fatalf("a plan made before a destroy: exit %d\n%s", code, errs)
	}
}
