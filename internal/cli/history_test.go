package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// threeGenerations applies the configuration, a saved plan of a second
// one, and rolls back: the README's history.
func threeGenerations(t *testing.T, h *fakeHost) {
	t.Helper()
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	planFile := filepath.Join(t.TempDir(), "two.plan")
	h.must(ExitOK, "plan", "-out", planFile)
	h.must(ExitOK, "apply", planFile)
	h.must(ExitOK, "rollback", "-auto-approve")
}

func TestHistoryListsTheGenerations(t *testing.T) {
	h := newFakeHost(t)
	if out := h.must(ExitOK, "history"); !strings.Contains(out, "No generation recorded in "+h.stateDir+".") {
		t.Fatalf("history before any apply:\n%s", out)
	}
	threeGenerations(t, h)
	out := h.must(ExitOK, "history")
	row := regexp.MustCompile(`(?m)^([ *]) (\d) +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  (\S+(?: plan)?) +([0-9a-f]{12}) +(\d+) +(\d+)$`)
	rows := row.FindAllStringSubmatch(out, -1)
	if len(rows) != 3 || !strings.Contains(out, "Generations kept in "+h.stateDir+" (the network namespace svcnat runs in), oldest first:") ||
		!strings.Contains(out, "* generation 3 is current.") {
		t.Fatalf("history:\n%s", out)
	}
	for i, want := range []struct{ mark, gen, by string }{{" ", "1", "apply"}, {" ", "2", "saved plan"}, {"*", "3", "rollback"}} {
		if r := rows[i]; r[1] != want.mark || r[2] != want.gen || r[3] != want.by {
			t.Errorf("row %d: %q, want %+v", i, r[0], want)
		}
	}
	// Generations 1 and 3 are one configuration, and the same rules.
	if rows[0][4] != rows[2][4] || rows[0][4] == rows[1][4] || rows[0][5] != rows[2][5] || rows[0][6] != rows[2][6] {
		t.Errorf("digests and counts of generations 1 and 3 differ:\n%s", out)
	}
	// A state file written before svcnat recorded what made a generation.
	p := filepath.Join(h.stateDir, "state.json")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, regexp.MustCompile(`,\s*"made_by": "saved_plan"`).ReplaceAll(b, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := h.must(ExitOK, "history"); !regexp.MustCompile(`(?m)^  2 +\S+ \S+ UTC  -  `).MatchString(out) {
		t.Fatalf("an unknown maker is not shown as -:\n%s", out)
	}
}

// rollback --to N shows the plan back to generation N, asks, and records
// a new generation; a generation that is gone is refused with those kept.
func TestRollbackToN(t *testing.T) {
	h := newFakeHost(t)
	threeGenerations(t, h)
	h.must(ExitOK, "apply", "-auto-approve") // 4: the second configuration again
	before, gen := h.rules(), h.generation()
	out, errs, code := h.run("rollback", "--to", "1")
	if code != ExitError || !strings.Contains(out, "Rolling back from generation 4 to generation 1 (applied ") ||
		!strings.Contains(out, "~ service default/nginx") || !strings.Contains(errs, "svcnat: error: rollback needs confirmation") {
		t.Fatalf("rollback --to 1 without a terminal: exit %d\n%s%s", code, out, errs)
	}
	if h.rules() != before || h.generation() != gen {
		t.Fatal("an unapproved rollback changed something")
	}
	h.terminal = true
	h.stdin = strings.NewReader("yes\n")
	out = h.must(ExitOK, "rollback", "--to", "1")
	if !strings.Contains(out, "Do you want to perform these actions?") || !strings.Contains(out, "Rolling back from generation 4 to generation 1") {
		t.Fatalf("rollback --to 1 did not ask:\n%s", out)
	}
	if !strings.Contains(out, "Rollback complete!") || !strings.Contains(out, "generation 5 recorded") {
		t.Fatalf("rollback --to 1:\n%s", out)
	}
	h.terminal = false
	var hist jsonHistory
	if err := json.Unmarshal([]byte(h.must(ExitOK, "history", "--json")), &hist); err != nil {
		t.Fatal(err)
	}
	first, last := hist.Generations[0], hist.Generations[len(hist.Generations)-1]
	if last.Generation != 5 || !last.Current || *last.MadeBy != "rollback" || *last.ConfigDigest != *first.ConfigDigest || *last.RulesDigest != *first.RulesDigest {
		t.Fatalf("generation 5 is not generation 1 again: %+v", last)
	}
	before, gen = h.rules(), h.generation()
	for _, to := range []string{"9", "5"} {
		_, errs, code = h.run("rollback", "-auto-approve", "--to", to)
		if code != ExitError || h.rules() != before || h.generation() != gen {
			t.Fatalf("rollback --to %s: exit %d\n%s", to, code, errs)
		}
		want := "svcnat: error: generation 9 is not kept in " + h.stateDir + "; it keeps generations 1, 2, 3, 4, 5; nothing was changed\nsvcnat: hint: svcnat history lists"
		if to == "5" {
			want = "svcnat: error: generation 5 is the current generation"
		}
		if !strings.Contains(errs, want) {
			t.Fatalf("rollback --to %s:\n%s", to, errs)
		}
	}
	if _, errs, code = h.run("rollback", "-auto-approve", "--to", "0"); code != ExitError || !strings.Contains(errs, "invalid value 0 for --to") {
		t.Fatalf("rollback --to 0: exit %d\n%s", code, errs)
	}
}

// A state directory used with another --netns is refused by plan (exit 1,
// reason other_namespace) and apply, and by show, rollback and destroy;
// nothing changes.
func TestStateDirectoryOfAnotherNamespace(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve", "--netns", "svcnat-a")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	says := "state directory " + h.stateDir + " records the rules of network namespace svcnat-a (iptables-nft backend), and this apply works in the network namespace svcnat runs in; nothing was changed"
	hint := "run with --netns svcnat-a to work on those rules"
	refusedLikeApply(t, h, "other_namespace", says, hint)
	before, gen := h.rules(), h.generation()
	for _, cmd := range []string{"show", "rollback", "destroy"} {
		_, errs, code := h.run(cmd, "-auto-approve")
		if cmd == "show" {
			_, errs, code = h.run(cmd)
		}
		if code != ExitError || !strings.Contains(errs, "records the rules of network namespace svcnat-a (iptables-nft backend), and this "+cmd+" works in the network namespace svcnat runs in") ||
			!strings.Contains(errs, "svcnat: hint: "+hint) {
			t.Fatalf("%s: exit %d\n%s", cmd, code, errs)
		}
		if h.rules() != before || h.generation() != gen {
			t.Fatalf("a refused %s changed something", cmd)
		}
	}
	h.must(ExitOK, "apply", "-auto-approve", "--netns", "svcnat-a")
}
