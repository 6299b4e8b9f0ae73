package netns

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/svcnat/svcnat/internal/testns"
)

// A namespace's identity is stable while it lives; a file that is not a
// namespace (what /run/netns/NAME is between `ip netns add` creating it
// and mounting the namespace on it) and a missing one have none.
func TestIdentity(t *testing.T) {
	a, err := Identity("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Identity("/proc/self/ns/net"); err != nil || b != a {
		t.Fatalf("the same namespace read twice: %q %v, was %q", b, err, a)
	}
	if id, err := Identity(t.TempDir()); err == nil {
		t.Fatalf("a directory has an identity: %q", id)
	}
	if id, err := Identity("svcnat-no-such-namespace"); err == nil {
		t.Fatalf("a missing namespace has an identity: %q", id)
	}
}

// A namespace has one identity by name and by path, another than the
// host's, and a namespace deleted and made again under its name another
// one: what the namespace lock and reconcile's listeners go by.
func TestIdentityOfANamespace(t *testing.T) {
	ns := testns.New(t)
	byName, err := Identity(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	own, err := Identity("")
	if err != nil {
		t.Fatal(err)
	}
	if byPath, err := Identity("/run/netns/" + ns.Name); err != nil || byPath != byName || byName == own {
		t.Fatalf("by name %q, by path %q (%v), own %q", byName, byPath, err, own)
	}
	if !strings.HasPrefix(byName, "c") {
		t.Logf("no netns cookie on this kernel: %s", byName)
	}
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if again, err := Identity(ns.Name); err != nil || again == byName {
		t.Fatalf("made again: %q (%v), was %q", again, err, byName)
	}
}

// A Dialer dials from its namespace (a listener that exists only there
// answers), from many goroutines at once, and every thread goes back to
// svcnat's own namespace after each dial: goroutines afterwards are all
// in it. It stays with the namespace it opened, whose identity it gives.
func TestDialer(t *testing.T) {
	ns := testns.New(t)
	ln, err := Listen(ns.Name, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	d, err := NewDialer(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if want, err := Identity(ns.Name); err != nil || d.Identity() != want {
		t.Fatalf("the dialer's identity %q, the namespace's %q (%v)", d.Identity(), want, err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	if _, err := d.DialContext(context.Background(), "tcp", "localhost:80"); err == nil {
		t.Error("a dialer dialled a host name")
	}
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if in, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || in != host {
				t.Errorf("a thread after the dials is in %q (%v), want svcnat's own %q", in, err, host)
			}
		})
	}
	wg.Wait()

	// Made again under its name: the dialer stays with the first, whose
	// listener still answers.
	for _, args := range [][]string{{"netns", "del", ns.Name}, {"netns", "add", ns.Name}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	if now, err := Identity(ns.Name); err != nil || now == d.Identity() {
		t.Fatalf("made again: %q (%v), the dialer's %q", now, err, d.Identity())
	}
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("the dialer left its namespace when the name was made again: %v", err)
	}
	c.Close()
}
