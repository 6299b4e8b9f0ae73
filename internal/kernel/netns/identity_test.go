package netns

import (
	"context"
	"errors"
	"fmt"
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

// Enter moves the calling goroutine's thread into a namespace for good:
// it returns the namespace's identity, Dial with "" from that goroutine
// reaches a listener that exists only there, and the thread never serves
// another goroutine (others stay in svcnat's own namespace, also after
// the goroutine ends: its thread ends with it).
func TestEnter(t *testing.T) {
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
	want, err := Identity(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			id, err := Enter(ns.Name)
			if err != nil {
				return err
			}
			if id != want {
				return fmt.Errorf("Enter returned %q, the namespace is %q", id, want)
			}
			for range 3 {
				c, err := Dial(context.Background(), "", "tcp", ln.Addr().String())
				if err != nil {
					return fmt.Errorf("dialling from the namespace entered: %w", err)
				}
				c.Close()
			}
			if _, err := Enter("svcnat-no-such-namespace"); err == nil {
				return errors.New("entered a namespace that does not exist")
			}
			if c, err := Dial(context.Background(), "", "tcp", ln.Addr().String()); err != nil {
				return fmt.Errorf("a failed Enter left the namespace: %w", err)
			} else {
				c.Close()
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Many goroutines on the threads that are left: none is in the
	// namespace (its listener's port is not open in svcnat's own).
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if in, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || in != host {
				t.Errorf("a goroutine after Enter's ended is in %q (%v), want svcnat's own %q", in, err, host)
			}
		})
	}
	wg.Wait()
}
