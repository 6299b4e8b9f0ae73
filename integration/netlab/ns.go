//go:build linux

package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// DefaultTimeout bounds every dial, HTTP request and UDP round trip made by
// an NS whose Timeout is zero. It is short because in a lab a healthy path
// answers in milliseconds; waiting longer only slows down negative tests.
var DefaultTimeout = 2 * time.Second

// commandTimeout keeps a wedged external tool from hanging the whole test
// binary until the go test deadline.
const commandTimeout = 30 * time.Second

// NS is a named network namespace, as `ip netns` knows it.
type NS struct {
	// Name is the namespace name under /var/run/netns.
	Name string
	// Timeout overrides DefaultTimeout for the network helpers.
	Timeout time.Duration
}

// WithTimeout returns a copy of ns whose network helpers use d.
func (ns NS) WithTimeout(d time.Duration) NS {
	ns.Timeout = d
	return ns
}

func (ns NS) timeout() time.Duration {
	if ns.Timeout > 0 {
		return ns.Timeout
	}
	return DefaultTimeout
}

// lookTool finds administrative tools even when PATH lacks the sbin
// directories (common for sudo-less root shells and CI runners).
func lookTool(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH or sbin directories", name)
}

// run executes a command in the current (caller's) namespace and returns
// stdout; the error carries the command line and stderr.
func run(where string, name string, args ...string) (string, error) {
	path, err := lookTool(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", where, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	// Tests parse tool output, so pin the locale.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: `%s %s`: %v\nstderr: %s",
			where, name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Exec runs args inside the namespace (`ip netns exec NAME args...`) and
// returns stdout. Unlike Run it does not fail the test, for commands whose
// failure is the expected outcome.
func (ns NS) Exec(args ...string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("netns %s: Exec without a command", ns.Name)
	}
	// Resolve here so sbin tools work whatever PATH `ip netns exec` sees.
	prog := args[0]
	if p, err := lookTool(prog); err == nil {
		prog = p
	}
	out, err := run("netns "+ns.Name, "ip", append([]string{"netns", "exec", ns.Name, prog}, args[1:]...)...)
	if err != nil {
		// Report the command as the caller wrote it, not the ip wrapper.
		return out, fmt.Errorf("%w (command: %s)", err, strings.Join(args, " "))
	}
	return out, nil
}

// Run is Exec that fails the test, naming the namespace, the command and
// its stderr.
func (ns NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// IP runs `ip -n NAME args...`, which is cheaper than Run("ip", ...)
// because it needs no mount namespace; it fails the test on error.
func (ns NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.ip(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (ns NS) ip(args ...string) (string, error) {
	return run("netns "+ns.Name, "ip", append([]string{"-n", ns.Name}, args...)...)
}

// Do runs fn on an OS thread that has entered the namespace. Sockets
// created inside fn stay in the namespace after Do returns, so the usual
// pattern is to create them in fn and use them from ordinary goroutines.
//
// fn runs on its own goroutine: it must not call t.FailNow (and so not
// t.Fatal); return an error instead. It also must not start goroutines that
// expect to be in the namespace.
func (ns NS) Do(fn func() error) error {
	// svcnat's own namespace switch, so the tests exercise the code
	// --netns runs; a panic in fn becomes an error naming the namespace.
	return netns.Do(ns.Name, func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("netns %s: panic: %v\n%s", ns.Name, r, debug.Stack())
			}
		}()
		return fn()
	})
}

// Sysctl sets a sysctl (dotted key, e.g. "net.ipv4.ip_forward") inside the
// namespace. /proc/sys/net resolves against the writing thread's namespace,
// so no child process is needed.
func (ns NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if err := ns.sysctl(key, value); err != nil {
		t.Fatal(err)
	}
}

func (ns NS) sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("netns %s: sysctl %s=%s: %w", ns.Name, key, value, err)
	}
	return nil
}

// AddAddr adds cidr (e.g. "203.0.113.10/32" or "fd00:32::10/128") to dev
// inside the namespace. IPv6 addresses skip DAD so they are usable at once.
func (ns NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	args := []string{"addr", "add", cidr, "dev", dev}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	ns.IP(t, args...)
}

// AddRoute adds a route to dst (a prefix or "default") via the gateway via.
func (ns NS) AddRoute(t testing.TB, dst, via string) {
	t.Helper()
	family := "-4"
	if strings.Contains(via, ":") {
		family = "-6"
	}
	ns.IP(t, family, "route", "add", dst, "via", via)
}
