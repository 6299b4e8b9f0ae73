package integration

// Real-kernel test of what a SIGKILL during a staged apply leaves, and
// how plan, show and the next apply deal with it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestInterruptedApplyNamed: `apply` creating more chains than one
// staging batch (nft) is killed with SIGKILL once the first batch is in:
// the chains the batches created stay, referenced by nothing. plan (also
// --json) and show name them as left by an interrupted apply, and the
// next apply leaves none.
func TestInterruptedApplyNamed(t *testing.T) {
	t.Parallel()
	ns := testns.New(t)
	// 1,000 services of two endpoints make about 3,300 chains: four
	// staging batches of at most 1,000.
	sv := NewSvcnat(t, ns.Name, writeConfig(t, bench.Files(bench.Spec{Services: 1000, Endpoints: 2})), "nft")
	sv.Env = []string{"SVCNAT_NODE=" + bench.Node}
	where := fmt.Sprintf("[netns %s, backend nft]", ns.Name)

	owned := func() *backend.Ruleset {
		rs, err := rules.ParseSave(backend.IPv4, strings.NewReader(ns.MustExec(t, "", "iptables-nft-save")))
		if err != nil {
			t.Fatal(err)
		}
		return rs.Owned(applyPrefix)
	}
	chains := func(rs *backend.Ruleset) int {
		n := 0
		for _, tb := range rs.Tables {
			for _, c := range tb.Chains {
				if !c.Builtin() {
					n++
				}
			}
		}
		return n
	}

	// The kill must land between two staging transactions whatever the
	// machine's speed (the whole apply takes well under a second on an
	// idle one): an iptables-nft-restore shim runs the first transaction
	// (the first staging batch), then marks that the second has begun and
	// holds it, without running it, until svcnat is gone.
	shim := t.TempDir()
	marker := filepath.Join(shim, "second-transaction")
	real, err := exec.LookPath("iptables-nft-restore")
	if err != nil {
		t.Skipf("iptables-nft-restore not found: %v", err)
	}
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
  if [ "$a" = "-V" ] || [ "$a" = "--version" ]; then exec %[1]q "$@"; fi
done
if [ ! -e %[2]q.first ]; then : > %[2]q.first; exec %[1]q "$@"; fi
: > %[2]q
while kill -0 $PPID 2>/dev/null; do sleep 0.05; done
exit 1
`, real, marker)
	if err := os.WriteFile(filepath.Join(shim, "iptables-nft-restore"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sv.Env = append(sv.Env, "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd := sv.Cmd("apply", "-auto-approve")
	sv.Env = sv.Env[:len(sv.Env)-1]
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	netlab.Eventually(t, time.Minute, func() error {
		if _, err := os.Stat(marker); err != nil {
			return fmt.Errorf("the second restore transaction has not begun: %v\n%s", err, out.String())
		}
		return nil
	})
	cmd.Process.Kill()
	err = cmd.Wait()
	killed = true
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("%s svcnat apply was to be killed while staging, but ended by itself (%v):\n%s", where, err, out.String())
	}
	// The batch iptables-restore had been handed finishes on its own.
	netlab.Eventually(t, 30*time.Second, func() error {
		pids, err := exec.Command(trIPTool(), "netns", "pids", ns.Name).Output()
		if err != nil || strings.TrimSpace(string(pids)) != "" {
			return fmt.Errorf("processes still running in %s: %s %v", ns.Name, pids, err)
		}
		return nil
	})
	left := owned()
	n := chains(left)
	if n == 0 || left.RuleCount() == 0 {
		t.Fatalf("%s the kill left no staged chain; cannot test what plan says of them", where)
	}
	for _, tb := range left.Tables {
		for _, c := range tb.Chains {
			if c.Builtin() && len(c.Rules) > 0 {
				t.Fatalf("%s the apply reached its commit before the kill (%s %s jumps into svcnat's chains)", where, tb.Name, c.Name)
			}
		}
	}
	t.Logf("SIGKILL left %d chains", n)

	r := sv.MustRun(t, 2, "plan", "--detailed-exitcode")
	if !strings.Contains(r.Stdout, "interrupted apply") || !strings.Contains(r.Stdout, fmt.Sprintf("%d chains", n)) {
		t.Fatalf("%s plan does not name the %d chains left by the interrupted apply:\n%s", where, n, trHead(r.Stdout, 40))
	}
	r = sv.MustRun(t, 2, "plan", "--detailed-exitcode", "--json")
	var p struct {
		Interrupted []struct{ Family, Table, Chain string } `json:"interrupted"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("%s plan --json: %v", where, err)
	}
	if len(p.Interrupted) != n || !strings.HasPrefix(p.Interrupted[0].Chain, applyPrefix+"-") || p.Interrupted[0].Family != "ipv4" {
		t.Fatalf("%s plan --json lists %d interrupted chains (first %+v), want the %d left", where, len(p.Interrupted), p.Interrupted[:min(1, len(p.Interrupted))], n)
	}
	r = sv.MustRun(t, 0, "show")
	if !strings.Contains(r.Stdout, "interrupted apply") || !strings.Contains(r.Stdout, fmt.Sprintf("%d chains", n)) {
		t.Fatalf("%s show does not name the %d chains left by the interrupted apply:\n%s", where, n, trHead(r.Stdout, 40))
	}

	sv.MustRun(t, 0, "apply", "-auto-approve")
	r = sv.MustRun(t, 0, "plan", "--detailed-exitcode", "--json")
	p.Interrupted = nil
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil || len(p.Interrupted) != 0 {
		t.Fatalf("%s after the next apply plan --json still lists %d interrupted chains (%v)", where, len(p.Interrupted), err)
	}
	if r := sv.MustRun(t, 0, "show"); strings.Contains(r.Stdout, "interrupted apply") {
		t.Fatalf("%s after the next apply show still names chains of an interrupted apply:\n%s", where, trHead(r.Stdout, 40))
	}
}
