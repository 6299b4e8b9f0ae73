//go:build linux

package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
)

// Changing a remote box safely (apply --confirm-timeout, svcnat confirm,
// --probe), on a real kernel with real traffic: generation 1 sends the
// web service to backend-0, the change under test sends it to backend-1.

func remoteLab(t *testing.T, backend string) (*trafficLab, trService, trService) {
	t.Helper()
	tl := newTrafficLab(t, backend, netlab.Options{Backends: 2, HTTPPorts: []int{80}, UDPPorts: []int{5353}})
	t.Cleanup(func() { killWatchers(t, tl.SV.StateDir) })
	dns := trService{Name: "kube-system/dns", ClusterIPs: []string{"10.32.0.10"},
		Ports: []trPort{{Name: "dns", Protocol: "UDP", Port: 53, Target: 5353}}}
	old := trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0))...)
	tl.apply(t, nil, old, dnsTo(dns, 0))
	remoteExpect(t, tl, "backend-0")
	return tl, trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(1))...), dnsTo(dns, 1)
}

func dnsTo(s trService, backend int) trService {
	s.Endpoints = trEndpoints("node1", trBackendIP4(backend))
	return s
}

// remoteExpect checks that the web service's cluster IP, from the node,
// is answered by backend.
func remoteExpect(t *testing.T, tl *trafficLab, backend string) {
	t.Helper()
	what := "default/web cluster IP from the node"
	trExpectFrom(t, trGet(t, tl.Node, trURL("10.32.0.61", 80), what), what, backend)
}

// watcherPIDs are the revert watchers (svcnat confirm-watch) of stateDir.
func watcherPIDs(stateDir string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if slicesContain(args, "confirm-watch") && slicesContain(args, stateDir) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			pids = append(pids, pid)
		}
	}
	return pids
}

func slicesContain(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// killWatchers ends the watchers a failed test left behind.
func killWatchers(t *testing.T, stateDir string) {
	for _, pid := range watcherPIDs(stateDir) {
		t.Logf("killing the watcher %d a test left", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitFor polls cond every 100ms until it holds or within has passed.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

// syncBuffer is a bytes.Buffer two goroutines may use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The revert outlives the process that ran apply and its session: apply
// runs on a pseudo-terminal (script(1)) in a session of its own, waits at
// the confirmation prompt, and is SIGKILLed; then its terminal is hung
// up. The watcher puts generation 1's rules back at the deadline, and the
// record says why.
func TestConfirmTimeoutOutlivesTheSession(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("needs script(1) from bsdutils for a pseudo-terminal")
	}
	for _, backend := range []string{"nft", "legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tl, web, dns := remoteLab(t, backend)
			before := tl.owned(t)
			tl.configure(t, web, dns)
			cmd := tl.SV.Cmd("apply", "-auto-approve", "--confirm-timeout", "5s")
			sc := exec.Command("script", "-qec", strings.Join(append([]string{cmd.Path}, cmd.Args[1:]...), " "), "/dev/null")
			sc.Env = cmd.Env
			stdin, err := sc.StdinPipe() // nobody answers
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			var out syncBuffer
			sc.Stdout, sc.Stderr = &out, &out
			sc.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := sc.Start(); err != nil {
				t.Fatal(err)
			}
			defer sc.Process.Kill()
			waitFor(t, time.Minute, "the confirmation prompt", func() bool { return strings.Contains(out.String(), "Keep these rules?") })
			remoteExpect(t, tl, "backend-1") // the change is in while it waits
			watchers := watcherPIDs(tl.SV.StateDir)
			if len(watchers) != 1 {
				t.Fatalf("watchers %v\n%s", watchers, out.String())
			}
			// SIGKILL apply, then hang up its terminal: script, the
			// pseudo-terminal's master, goes too.
			applyPID := 0
			for _, d := range mustGlob(t, "/proc/[0-9]*") {
				b, _ := os.ReadFile(d + "/cmdline")
				args := strings.Split(string(b), "\x00")
				if len(args) > 0 && args[0] == svcnatBin && slicesContain(args, "apply") && slicesContain(args, tl.SV.StateDir) {
					applyPID, _ = strconv.Atoi(filepath.Base(d))
				}
			}
			if applyPID == 0 {
				t.Fatal("the apply process is not found")
			}
			syscall.Kill(applyPID, syscall.SIGKILL)
			syscall.Kill(-sc.Process.Pid, syscall.SIGHUP)
			sc.Process.Kill()
			sc.Wait()
			if syscall.Kill(applyPID, 0) == nil {
				waitFor(t, 5*time.Second, "apply to die", func() bool { return syscall.Kill(applyPID, 0) != nil })
			}
			if syscall.Kill(watchers[0], 0) != nil {
				t.Fatalf("the watcher died with the session\n%s", out.String())
			}
			remoteExpect(t, tl, "backend-1") // still pending
			waitFor(t, 30*time.Second, "the watcher's revert", func() bool { return len(watcherPIDs(tl.SV.StateDir)) == 0 })
			if got := tl.owned(t); got != before {
				t.Fatalf("after the revert the owned rules are not generation 1's:\n%s", applyDiff(before, got))
			}
			remoteExpect(t, tl, "backend-0")
			show := tl.SV.MustRun(t, 0, "show").Stdout
			if !strings.Contains(show, "Generation 3 applied") || !strings.Contains(show, "reverting generation 2 (not confirmed within 5s)") || !strings.Contains(show, "No drift") {
				t.Fatalf("show after the revert:\n%s", show)
			}
			log, _ := os.ReadFile(filepath.Join(tl.SV.StateDir, "watcher.log"))
			if !strings.Contains(string(log), "msg=reverted") {
				t.Fatalf("watcher log:\n%s", log)
			}
			// A plain apply converges again.
			tl.SV.MustRun(t, 0, "apply", "-auto-approve")
			remoteExpect(t, tl, "backend-1")
		})
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var pendingRE = regexp.MustCompile(`Apply ([0-9a-f]+) awaits confirmation: generation \d+ stays only if confirmed by (\d\d:\d\d:\d\d)`)

// A CI job: apply without a terminal leaves the change pending; a second
// apply is refused and changes nothing; svcnat confirm from another
// process keeps the change past the deadline.
func TestConfirmFromAnotherProcess(t *testing.T) {
	tl, web, dns := remoteLab(t, "nft")
	// An environment naming another state directory and namespace (the
	// watcher inherits it without systemd) changes nothing: svcnat's
	// flags, and the watcher's, win over it.
	tl.SV.Env = append(tl.SV.Env, "SVCNAT_STATE_DIR="+t.TempDir(), "SVCNAT_NETNS=svcnat-no-such-namespace")
	tl.configure(t, web, dns)
	start := time.Now()
	r := tl.SV.MustRun(t, 0, "apply", "-auto-approve", "--confirm-timeout", "4s")
	m := pendingRE.FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("apply --confirm-timeout:\n%s", r)
	}
	id := m[1]
	during := tl.owned(t)
	remoteExpect(t, tl, "backend-1")
	tl.configure(t, trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0), trBackendIP4(1))...), dns)
	second := tl.SV.MustRun(t, 1, "apply", "-auto-approve")
	if !strings.Contains(second.Stderr, "apply "+id+" (generation 2) awaits confirmation until "+m[2]) ||
		!strings.Contains(second.Stderr, "svcnat confirm "+id) || tl.owned(t) != during {
		t.Fatalf("a second apply while one is pending:\n%s", second)
	}
	if c := tl.SV.MustRun(t, 0, "confirm", id); c.Stdout != "Confirmed apply "+id+": generation 2 stays.\n" {
		t.Fatalf("confirm:\n%s", c)
	}
	waitFor(t, 10*time.Second, "the watcher to end", func() bool { return len(watcherPIDs(tl.SV.StateDir)) == 0 })
	// Past the deadline nothing has changed: the deadline is a time, not
	// a condition to poll.
	time.Sleep(time.Until(start.Add(5 * time.Second)))
	if tl.owned(t) != during {
		t.Fatal("a confirmed apply did not stay past its deadline")
	}
	remoteExpect(t, tl, "backend-1")
}

// Probes run from the node's namespace after the commit: a failing one
// rolls the apply back and says which probe failed and how; passing ones
// confirm a pending apply at once.
func TestProbeGatedApply(t *testing.T) {
	tl, web, dns := remoteLab(t, "legacy")
	before := tl.owned(t)
	tl.configure(t, web, dns)
	bad := tl.SV.MustRun(t, 1, "apply", "-auto-approve", "--probe", "tcp://10.32.0.61:80", "--probe", "tcp://10.32.0.61:81", "--probe-timeout", "2s")
	if !strings.Contains(bad.Stderr, "probe tcp://10.32.0.61:81 failed after") || !strings.Contains(bad.Stderr, "restored") {
		t.Fatalf("apply with a failing probe:\n%s", bad)
	}
	if got := tl.owned(t); got != before {
		t.Fatalf("a failed probe left:\n%s", applyDiff(before, got))
	}
	remoteExpect(t, tl, "backend-0")
	tl.SV.MustRun(t, 0, "plan") // nothing pending, nothing recorded
	good := tl.SV.MustRun(t, 0, "apply", "-auto-approve", "--confirm-timeout", "1h",
		"--probe", "http://10.32.0.61:80/", "--probe", "udp://10.32.0.10:53?send=hello")
	if !strings.Contains(good.Stdout, "2 probes passed: the apply is confirmed.") || strings.Contains(good.Stdout, "awaits confirmation") {
		t.Fatalf("apply with passing probes:\n%s", good)
	}
	waitFor(t, 10*time.Second, "the watcher to end", func() bool { return len(watcherPIDs(tl.SV.StateDir)) == 0 })
	remoteExpect(t, tl, "backend-1")
	tl.SV.MustRun(t, 0, "plan", "--detailed-exitcode")
}
