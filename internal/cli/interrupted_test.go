package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// TestPlanAndShowNameInterruptedChains: owned chains nothing references,
// which no generation recorded (what a SIGKILL while staging leaves), are
// named by plan, plan --json and show; after an apply, by none of them.
// The killed apply noted them in the state directory before it created
// them: the next apply clears them without --adopt.
func TestPlanAndShowNameInterruptedChains(t *testing.T) {
	h := newFakeHost(t)
	left := "*nat\n:SVCNAT-SVC-LEFT - [0:0]\n:SVCNAT-SEP-LEFT - [0:0]\n-A SVCNAT-SVC-LEFT -j SVCNAT-SEP-LEFT\nCOMMIT\n"
	if err := h.fake.Restore(backend.IPv4, []byte(left), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.stateDir, "applying.json", `{"chains": ["IPv4 nat SVCNAT-SEP-LEFT", "IPv4 nat SVCNAT-SVC-LEFT"]}`)
	out, errs, code := h.run("plan")
	if code != 0 || !strings.Contains(out, "Interrupted: 2 chains left by an interrupted apply") || !strings.Contains(out, "IPv4 nat SVCNAT-SEP-LEFT") {
		t.Fatalf("plan: exit %d, want the 2 chains named:\n%s%s", code, out, errs)
	}
	out, _, _ = h.run("--json", "plan")
	var p jsonPlan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Interrupted) != 2 || p.Interrupted[0] != (jsonLeft{Family: "ipv4", Table: "nat", Chain: "SVCNAT-SEP-LEFT"}) {
		t.Fatalf("plan --json interrupted = %+v", p.Interrupted)
	}
	if out, errs, code := h.run("show"); code != 0 || !strings.Contains(out, "2 chains left by an interrupted apply") {
		t.Fatalf("show: exit %d, want the 2 chains named:\n%s%s", code, out, errs)
	}
	if _, errs, code := h.run("apply", "-auto-approve"); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{{"plan"}, {"show"}} {
		if out, _, _ := h.run(args...); strings.Contains(out, "interrupted") {
			t.Fatalf("%s after apply still names interrupted chains:\n%s", args[0], out)
		}
	}
	out, _, _ = h.run("--json", "plan")
	if !strings.Contains(out, `"interrupted": []`) {
		t.Fatalf("plan --json after apply: want an empty interrupted list:\n%s", out)
	}
}

// TestPlanOfADumpReadsNoState: a dump is not this host, so plan
// --iptables-save reads nothing of this host's state directory, even one
// that cannot be read, and names no chain in it interrupted: only a state
// directory's own note proves an apply of it began one.
func TestPlanOfADumpReadsNoState(t *testing.T) {
	stateDir := t.TempDir()
	writeFile(t, stateDir, "state.json", "garbage")
	left := "*nat\n:SVCNAT-SVC-LEFT - [0:0]\n:SVCNAT-SEP-LEFT - [0:0]\n-A SVCNAT-SVC-LEFT -j SVCNAT-SEP-LEFT\nCOMMIT\n"
	out, errs, code := planOffline(t, left, "--state-dir", stateDir)
	if code != ExitOK || strings.Contains(out, "Interrupted:") || !strings.Contains(out, "- chain SVCNAT-SEP-LEFT") {
		t.Fatalf("plan --iptables-save beside an unreadable state directory: exit %d\n%s%s", code, out, errs)
	}
}
