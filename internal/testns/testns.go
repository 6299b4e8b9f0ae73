// Package testns gives tests a fresh, empty network namespace of their own
// and runs commands inside it, so no test ever touches the rules of the
// machine's own namespace. It is for tests only.
package testns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	seq       atomic.Int64
	sweepOnce sync.Once
)

// prefix starts every namespace New makes: "svcnat-t<pid>-<n>".
const prefix = "svcnat-t"

// NS is a named network namespace (as `ip netns` makes them).
type NS struct {
	Name string
}

// Available reports why namespaces cannot be made here, or "" when they
// can. With -short they are not made: the unit suite runs as an ordinary
// user in seconds.
func Available() string {
	if testing.Short() {
		return "needs root and network namespaces; skipped with -short"
	}
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2's ip"
	}
	return ""
}

// New creates a fresh namespace named after the test and removes it when the
// test ends, also when it fails. The test is skipped when namespaces cannot
// be made (not root).
func New(t testing.TB) *NS {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	sweepOnce.Do(func() {
		if removed, err := SweepStale(prefix); err != nil {
			t.Logf("testns: sweeping stale namespaces: %v", err)
		} else if len(removed) > 0 {
			t.Logf("testns: removed the namespaces of dead test processes: %v", removed)
		}
	})
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "No such file") {
			t.Errorf("removing namespace %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("creating namespace %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	ns.MustExec(t, "", "ip", "link", "set", "lo", "up")
	return ns
}

// Exec runs a command inside the namespace with stdin, returning stdout; the
// error carries stderr.
func (ns *NS) Exec(stdin, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// MustExec is Exec that fails the test on error.
func (ns *NS) MustExec(t testing.TB, stdin, name string, args ...string) string {
	t.Helper()
	out, err := ns.Exec(stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SweepStale deletes namespaces whose name starts with prefix followed by
// the pid of a process that no longer exists ("<prefix><pid>-..."): the
// leftovers of a test run killed before its cleanups ran. New calls it once
// per process for its own names, and the lab for its. It returns the names
// it removed.
func SweepStale(prefix string) ([]string, error) {
	entries, err := os.ReadDir("/var/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // owner still alive (or pid reused: leave it be)
		}
		if out, err := exec.Command("ip", "netns", "delete", e.Name()).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %w: %s", e.Name(), err, strings.TrimSpace(string(out))))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}
