package reconcile

import (
	"testing"
)

// A namespace's identity is stable while it lives; a file that is not a
// namespace (what /run/netns/NAME is between `ip netns add` creating it
// and mounting the namespace on it) and a missing one have none.
func TestNetNSIdentity(t *testing.T) {
	a, err := netnsIdentity("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := netnsIdentity("/proc/self/ns/net"); err != nil || b != a {
		t.Fatalf("the same namespace read twice: %q %v, was %q", b, err, a)
	}
	if id, err := netnsIdentity(t.TempDir()); err == nil {
		t.Fatalf("a directory has an identity: %q", id)
	}
	if id, err := netnsIdentity("svcnat-no-such-namespace"); err == nil {
		t.Fatalf("a missing namespace has an identity: %q", id)
	}
}
