package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rollback that finds the rules already those of its generation, the
// record behind them, says so in its own words and is recorded as the
// rollback it is: no earlier apply stopped here.
func TestRollbackCatchingUpTheRecord(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve") // 1
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.must(ExitOK, "apply", "-auto-approve") // 2
	record := filepath.Join(h.stateDir, "state.json")
	second, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	h.must(ExitOK, "rollback", "-auto-approve") // 3: the rules of 1
	// The record of the rollback is lost: it says 2, the rules are 1's.
	if err := os.WriteFile(record, second, 0o600); err != nil {
		t.Fatal(err)
	}
	out := h.must(ExitOK, "rollback", "-auto-approve", "--to", "1")
	if strings.Contains(out, "an earlier apply stopped") || !strings.Contains(out, "The rules already match the plan (this rollback changes none of them): generation 3 recorded") {
		t.Fatalf("rollback catching up the record:\n%s", out)
	}
	if out := h.must(ExitOK, "history"); !strings.Contains(out, "* 3") || !strings.Contains(out, "rollback") || strings.Contains(out, "repair") {
		t.Fatalf("history:\n%s", out)
	}
}

// A generation that took chains over with --adopt says so in history,
// human and JSON.
func TestHistoryShowsAdoption(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	h.stateDir = t.TempDir() // the state directory is lost
	out := h.must(ExitOK, "apply", "-auto-approve", "--adopt")
	if !strings.Contains(out, "Adopted 11 chains") {
		t.Fatalf("apply --adopt:\n%s", out)
	}
	if out := h.must(ExitOK, "history"); !strings.Contains(out, "adopted 11 chains") {
		t.Fatalf("history:\n%s", out)
	}
	if out := h.must(ExitOK, "history", "--json"); !strings.Contains(out, `"adopted": 11`) {
		t.Fatalf("history --json:\n%s", out)
	}
}
