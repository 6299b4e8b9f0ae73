package integration

// Real-kernel tests of apply under faults: a restore that fails, a held
// state lock, and signals while planning and while committing. On both
// backends.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// applyRestoreShims writes iptables-restore shims for both backends and
// families into a new directory and returns it and the call counter's
// path. The shims pass -V through to the real binary (svcnat probes the
// version) and otherwise count the call: call failOn (every call when 0)
// fails as a rejected payload would, the others run the real binary.
func applyRestoreShims(t *testing.T, failOn int) (dir, counter string) {
	t.Helper()
	dir = t.TempDir()
	counter = filepath.Join(dir, "calls")
	for _, name := range []string{"iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-restore"} {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not found: %v", name, err)
		}
		script := fmt.Sprintf(`#!/bin/sh
# Test shim for %[1]s: fails call %[3]d (every call when 0).
for a in "$@"; do
  if [ "$a" = "-V" ] || [ "$a" = "--version" ]; then exec %[2]q "$@"; fi
done
n=$(( $(cat %[4]q 2>/dev/null || echo 0) + 1 ))
echo "$n" > %[4]q
if [ %[3]d -eq 0 ] || [ "$n" -eq %[3]d ]; then
  cat >/dev/null
  echo "iptables-restore: line 3 failed" >&2
  exit 1
fi
exec %[2]q "$@"
`, name, real, failOn, counter)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, counter
}

func applyCalls(t *testing.T, counter string) int {
	t.Helper()
	data, err := os.ReadFile(counter)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("shim call counter %s: %v", counter, err)
	}
	return n
}

// TestShimRestoreFails: iptables-restore refusing the payload leaves the
// live rules exactly as they were, and a failure after one family was
// committed is rolled back through the real binary.
func TestShimRestoreFails(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		for _, c := range []struct {
			name   string
			failOn int
		}{
			// Every restore fails: the first commit is refused.
			{"always", 0},
			// The IPv4 commit goes through, the IPv6 one fails: the
			// rollback must restore IPv4 with the real binary (call 3).
			{"second-call", 2},
		} {
			t.Run(c.name, func(t *testing.T) {
				l := newApplyLab(t, b, applyBaseConfig)
				l.must(0, "apply", "-auto-approve")
				genA, ownedA, fullA := l.generation(), l.owned(), l.full()

				shim, counter := applyRestoreShims(t, c.failOn)
				l.setConfig(applyChangedAPIBoth())
				l.sv.Env = []string{"PATH=" + shim + string(os.PathListSeparator) + os.Getenv("PATH")}
				r := l.sv.Run(t, "apply", "-auto-approve")
				l.sv.Env = nil
				if r.Code == 0 {
					t.Fatalf("%s apply through a failing iptables-restore shim (%s) succeeded: %s", l.where(), shim, r)
				}
				if !strings.Contains(r.Stderr, "line 3") {
					t.Fatalf("%s apply through a failing shim: the error does not name the failing line 3: %s", l.where(), r)
				}
				calls := applyCalls(t, counter)
				if calls == 0 {
					t.Fatalf("%s the shim in %s was never called; svcnat did not look iptables-restore up on PATH: %s", l.where(), shim, r)
				}
				if c.failOn == 2 {
					if calls < 3 {
						t.Fatalf("%s want the IPv4 commit, the failing IPv6 commit and the IPv4 rollback to run iptables-restore, got %d calls: %s", l.where(), calls, r)
					}
					if !strings.Contains(r.Stderr, "restored") {
						t.Fatalf("%s apply does not say the owned chains were restored: %s", l.where(), r)
					}
				}
				t.Logf("%s %d iptables-restore calls; stderr: %s", l.where(), calls, strings.TrimSpace(r.Stderr))
				l.same("owned rules after a failed apply", ownedA, l.owned())
				l.same("live rules after a failed apply", fullA, l.full())
				if g := l.generation(); g != genA {
					t.Fatalf("%s a failed apply recorded generation %d, want %d", l.where(), g, genA)
				}
				if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
					t.Fatalf("%s show after a failed apply: %s", l.where(), r)
				}
				// Without the shim the same apply converges.
				l.must(0, "apply", "-auto-approve")
				l.must(0, "plan", "--detailed-exitcode")
			})
		}
	})
}

// TestLockHeld: a second apply gives up after --lock-timeout while the
// state lock is held, saying so, and changes nothing.
func TestLockHeld(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		d, err := state.Open(l.sv.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		// flock(2) locks belong to the open file: holding it here
		// blocks the svcnat process exactly as another svcnat would.
		lock, err := d.Lock(context.Background(), 0)
		if err != nil {
			t.Fatalf("%s taking the lock on %s: %v", l.where(), l.sv.StateDir, err)
		}
		t.Cleanup(func() { lock.Unlock() })
		before := l.full()
		start := time.Now()
		r := l.must(1, "apply", "-auto-approve", "--lock-timeout", "1s")
		t.Logf("%s apply gave up after %s", l.where(), time.Since(start).Round(time.Millisecond))
		if !strings.Contains(r.Stderr, "locked") || !strings.Contains(r.Stderr, l.sv.StateDir) ||
			!strings.Contains(r.Stderr, fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("%s apply with the lock held: want a message saying %s is locked by pid %d: %s",
				l.where(), l.sv.StateDir, os.Getpid(), r)
		}
		l.same("live rules after a lock timeout", before, l.full())
		if err := lock.Unlock(); err != nil {
			t.Fatal(err)
		}
		l.must(0, "apply", "-auto-approve", "--lock-timeout", "1s")
		l.must(0, "plan", "--detailed-exitcode")
	})
}

// TestSignalDuringApply: SIGTERM at a random moment of an apply leaves the
// owned rules exactly the old or the new set, never a mix, the state
// agreeing with them, and the next apply converges.
func TestSignalDuringApply(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		const services, iterations = 200, 12
		cfgs := [2]string{applyBulkConfig(services, 0), applyBulkConfig(services, 1)}
		l := newApplyLab(t, b, cfgs[0])
		l.must(0, "apply", "-auto-approve")
		var sets [2]string
		sets[0] = l.ownedFam(backend.IPv4)
		l.setConfig(cfgs[1])
		start := time.Now()
		l.must(0, "apply", "-auto-approve")
		took := time.Since(start)
		sets[1] = l.ownedFam(backend.IPv4)
		if sets[0] == sets[1] {
			t.Fatalf("%s configurations A and B render the same rules", l.where())
		}
		seed := uint64(time.Now().UnixNano())
		rng := rand.New(rand.NewPCG(seed, 0))
		t.Logf("%s an unsignalled apply of the change took %s; seed %d", l.where(), took.Round(time.Millisecond), seed)

		outcomes := map[string]int{}
		for i := range iterations {
			from, to := (i+1)%2, i%2 // live is sets[from]; apply sets[to]
			l.setConfig(cfgs[to])
			gen := l.generation()
			delay := took/4 + time.Duration(rng.Int64N(int64(took)))
			cmd := l.sv.Cmd("apply", "-auto-approve")
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGTERM) })
			waitErr := cmd.Wait()
			timer.Stop()
			how := "exit 0"
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				how = "killed by " + ws.Signal().String()
			} else if waitErr != nil {
				how = fmt.Sprintf("exit %d", cmd.ProcessState.ExitCode())
			}
			if i := strings.Index(errb.String(), "interrupted before "); i >= 0 {
				phase, _, _ := strings.Cut(errb.String()[i:], ":")
				how += ", " + phase
			}
			run := fmt.Sprintf("iteration %d (SIGTERM after %s): %s\n--- stdout\n%s--- stderr\n%s",
				i, delay.Round(time.Microsecond), how, out.String(), errb.String())

			got := l.ownedFam(backend.IPv4)
			newGen := l.generation()
			switch got {
			case sets[from]:
				if how == "exit 0" {
					t.Fatalf("%s apply exited 0 but the live rules are the old set; %s", l.where(), run)
				}
				if newGen != gen {
					t.Fatalf("%s the live rules are the old set but the state went from generation %d to %d; %s", l.where(), gen, newGen, run)
				}
				// An apply that was rolled back returned to exactly the
				// rules the current generation recorded.
				if rec, err := os.ReadFile(filepath.Join(l.sv.StateDir, "generations", fmt.Sprintf("%d.ipv4.rules", gen))); err == nil {
					l.same(fmt.Sprintf("rules of generation %d and the live rules kept; %s", gen, run), got, string(rec))
				}
				outcomes["old set kept ("+how+")"]++
			case sets[to]:
				if newGen != gen+1 {
					t.Fatalf("%s the live rules are the new set but the state is at generation %d, want %d; %s", l.where(), newGen, gen+1, run)
				}
				outcomes["new set ("+how+")"]++
			default:
				t.Fatalf("%s after SIGTERM the owned rules are neither the old nor the new set; %s\n--- diff against the old set (- old, + live)\n%s",
					l.where(), run, applyDiff(sets[from], got))
			}
			// Whatever happened, the next apply converges.
			l.must(0, "apply", "-auto-approve")
			l.must(0, "plan", "--detailed-exitcode")
			l.same("owned rules after converging", sets[to], l.ownedFam(backend.IPv4))
		}
		t.Logf("%s outcomes: %v", l.where(), outcomes)
	})
}

// TestSignalWhilePlanning: a SIGTERM that arrives after apply took the
// lock, while it is still reading the live rules to make its plan, stops
// the apply: exit 1, nothing changed, nothing recorded. (It used to be
// swallowed by the lock's signal context, and the apply went ahead.)
func TestSignalWhilePlanning(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.must(0, "apply", "-auto-approve")
		genA, ownedA := l.generation(), l.owned()

		// iptables-save shims: the first call marks that svcnat is
		// planning and stalls a second; every call then runs the real one.
		shim := t.TempDir()
		marker := filepath.Join(shim, "planning")
		for _, name := range []string{"iptables-" + b + "-save", "ip6tables-" + b + "-save"} {
			real, err := exec.LookPath(name)
			if err != nil {
				t.Skipf("%s not found: %v", name, err)
			}
			script := fmt.Sprintf("#!/bin/sh\nif [ ! -e %[1]q ]; then : > %[1]q; sleep 1; fi\nexec %[2]q \"$@\"\n", marker, real)
			if err := os.WriteFile(filepath.Join(shim, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		l.setConfig(applyChangedAPIBoth())
		l.sv.Env = []string{"PATH=" + shim + string(os.PathListSeparator) + os.Getenv("PATH")}
		cmd := l.sv.Cmd("apply", "-auto-approve")
		l.sv.Env = nil
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s svcnat apply never ran the iptables-save shim in %s:\n%s%s", l.where(), shim, out.String(), errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("%s signalling svcnat apply: %v", l.where(), err)
		}
		cmd.Wait()
		r := Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
		if r.Code != 1 || !strings.Contains(r.Stderr, "interrupted") {
			t.Fatalf("%s svcnat apply, SIGTERM while it read the live rules to plan: want exit 1 saying it was interrupted, got %s", l.where(), r)
		}
		l.same("owned rules after an apply interrupted while planning", ownedA, l.owned())
		if g := l.generation(); g != genA {
			t.Fatalf("%s an interrupted apply recorded generation %d, want %d", l.where(), g, genA)
		}
	})
}
