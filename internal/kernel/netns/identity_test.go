package netns

import (
	"os/exec"
	"strings"
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
