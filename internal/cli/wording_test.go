package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
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

// Commands that never change anything do not say "nothing was changed":
// plan reports apply's refusal as what apply would refuse, show a
// generation it cannot read, without the words of a command that could
// have changed something. apply keeps them.
func TestReadOnlyCommandsDoNotSayNothingWasChanged(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"KUBE\"\n}\n")
	_, errs, code := h.run("plan")
	if want := "svcnat: error: svcnat apply would refuse this plan: chain_prefix changed from SVCNAT to KUBE\nsvcnat: hint: run svcnat destroy"; code != ExitError || !strings.HasPrefix(errs, want) {
		t.Errorf("plan after a prefix change: exit %d\n%s\nwant it to begin\n%s", code, errs, want)
	}
	if _, errs, _ := h.run("apply", "-auto-approve"); !strings.Contains(errs, "chain_prefix changed from SVCNAT to KUBE; nothing was changed\n") {
		t.Errorf("apply after a prefix change:\n%s", errs)
	}
	writeFile(t, h.config, "settings.hcl", "")
	gens, err := filepath.Glob(filepath.Join(h.stateDir, "generations", "*"))
	if err != nil || len(gens) == 0 {
		t.Fatalf("generation files: %v %v", gens, err)
	}
	for _, g := range gens {
		if err := os.RemoveAll(g); err != nil {
			t.Fatal(err)
		}
	}
	// An invalid configuration, whatever reads it.
	bad := t.TempDir()
	for _, cmd := range []string{"validate", "render", "plan", "graph"} {
		_, errs, code := h.run(cmd, "-c", bad)
		if want := "svcnat: error: 1 problem in " + bad + "\n"; code != ExitError || !strings.HasSuffix(errs, want) {
			t.Errorf("%s of a directory without configuration: exit %d\n%s\nwant it to end\n%s", cmd, code, errs, want)
		}
	}
	_, errs, code = h.run("show")
	if code != ExitError || !strings.HasPrefix(errs, "svcnat: error: ") || strings.Contains(errs, "nothing was changed") {
		t.Errorf("show of a generation whose files are gone: exit %d\n%s", code, errs)
	}
}

// Legacy tables beside the nft backend get svcnat's own warning, once per
// command, in place of iptables-nft's "# Warning: iptables-legacy tables
// present" (kept out of svcnat's output by the iptables package).
func TestLegacyTablesWarnedOnce(t *testing.T) {
	h := newFakeHost(t)
	run := func(d kernel.Detection, args ...string) (string, string) {
		var out, errb bytes.Buffer
		env := h.env(strings.NewReader(""), &out, &errb)
		open := env.OpenHost
		env.OpenHost = func(o engine.HostOptions) (*engine.Host, error) {
			host, err := open(o)
			if host != nil {
				host.Detection = d
			}
			return host, err
		}
		if code := Run(env, append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, args...)); code != ExitOK {
			t.Fatalf("svcnat %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	empty := kernel.Detection{LegacyTables: true}
	want := "svcnat: warning: iptables-legacy tables are present (0 rules); svcnat works on the nft backend, which does not show them (iptables-legacy-save does)\n"
	for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}, {"show"}} {
		if _, errs := run(empty, args...); errs != want {
			t.Errorf("svcnat %v beside empty legacy tables: stderr\n%s\nwant\n%s", args, errs, want)
		}
	}
	// Rules in both: the warning that says so is the one.
	mixed := kernel.Detection{Reason: "svcnat chains are in the nft backend", Mixed: true, LegacyTables: true, LegacyRules: 1}
	if _, errs := run(mixed, "plan"); errs != "svcnat: warning: both iptables backends hold rules; svcnat chains are in the nft backend\n" {
		t.Errorf("plan with rules in both backends: stderr\n%s", errs)
	}
	if _, errs := run(kernel.Detection{}, "plan"); errs != "" {
		t.Errorf("plan without legacy tables: stderr %q", errs)
	}
}

// A rollback to the rules that are already live names the generation,
// not a configuration it does not read.
func TestEmptyRollbackNamesTheGeneration(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	before := h.rules()
	writeFile(t, h.config, "settings.hcl", "settings {\n  cluster_cidrs = [\"10.64.0.0/10\"]\n}\n")
	h.must(ExitOK, "apply", "-auto-approve")
	// Someone takes generation 2's new rule out by hand: the live rules
	// are generation 1's again.
	var added []string
	for _, l := range strings.Split(h.rules(), "\n") {
		if strings.HasPrefix(l, "-A ") && !strings.Contains(before, l+"\n") {
			added = append(added, "-D"+strings.TrimPrefix(l, "-A"))
		}
	}
	if len(added) != 1 {
		t.Fatalf("generation 2 added %v, want one rule", added)
	}
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n"+added[0]+"\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	out := h.must(ExitOK, "rollback", "-auto-approve")
	if !strings.Contains(out, "No changes. The live rules are generation 1's.\n") || strings.Contains(out, "match the configuration") {
		t.Fatalf("rollback to the live rules:\n%s", out)
	}
}
