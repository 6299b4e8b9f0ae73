package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/state"
)

// A state directory records the network namespace of its rules; every
// command in another one is refused, naming both, and changes nothing
// (it used to read every recorded chain as gone, and apply over them).
func TestStateDirectoryOfAnotherNamespaceIsRefused(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	h.e.NetNS = "svcnat-a"
	h.twoGenerations(t)
	if ns := h.state(t).Namespace; ns == nil || ns.Name != "svcnat-a" {
		t.Fatalf("namespace recorded: %+v", ns)
	}
	rules := h.text(t)
	h.e.NetNS = "svcnat-b"
	refused := func(what string, err error) {
		t.Helper()
		var ne *NamespaceError
		if !errors.As(err, &ne) || ne.Recorded != "svcnat-a" || ne.Current != "svcnat-b" ||
			!strings.Contains(err.Error(), "records the rules of network namespace svcnat-a (iptables-nft backend), and this "+what+" works in network namespace svcnat-b") {
			t.Fatalf("%s in another namespace: %v", what, err)
		}
		if what != "show" && !strings.Contains(err.Error(), "; nothing was changed") {
			t.Fatalf("%s: %v", what, err)
		}
		if !strings.Contains(ne.Hint(), "--netns svcnat-a") {
			t.Fatalf("hint: %s", ne.Hint())
		}
		h.unchanged(t, rules, 2)
	}
	p, err := h.e.Plan(parse(t, web), "n1")
	if err != nil {
		t.Fatal(err)
	}
	refusal, err := h.e.ApplyRefusal(p)
	if err != nil {
		t.Fatal(err)
	}
	refused("apply", refusal)
	_, err = h.e.Apply(ctx, parse(t, web), "n1")
	refused("apply", err)
	_, err = h.e.ApplySaved(ctx, p, ConfigDigest(parse(t, web)))
	refused("apply", err)
	_, err = h.e.Rollback(ctx, "SVCNAT")
	refused("rollback", err)
	_, err = h.e.Destroy(ctx, "SVCNAT")
	refused("destroy", err)
	_, err = h.e.Show("SVCNAT")
	refused("show", err)
	_, err = h.e.RepairRecorded(ctx, "SVCNAT")
	refused("repair", err)
	// The host's own namespace is another one too.
	h.e.NetNS = ""
	if _, err := h.e.Apply(ctx, parse(t, web), "n1"); err == nil || !strings.Contains(err.Error(), "this apply works in the network namespace svcnat runs in") {
		t.Fatalf("apply in the host's namespace: %v", err)
	}
	// ip netns's path to the namespace is the namespace.
	h.e.NetNS = "/run/netns/svcnat-a"
	if _, err := h.e.Show("SVCNAT"); err != nil {
		t.Fatalf("show by the path of the namespace: %v", err)
	}
	// Once destroyed, the state directory owns nothing: any namespace may
	// come next.
	h.e.NetNS = "svcnat-a"
	if _, err := h.e.Destroy(ctx, "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if ns := h.state(t).Namespace; ns != nil {
		t.Fatalf("a destroy kept the namespace %+v", ns)
	}
	h.e.NetNS = "svcnat-b"
	h.mustApply(t, parse(t, web))
	if ns := h.state(t).Namespace; ns == nil || ns.Name != "svcnat-b" {
		t.Fatalf("namespace recorded: %+v", ns)
	}
}

// A state file written before svcnat recorded the namespace refuses
// nothing, and the next apply records it.
func TestStateWithoutANamespaceRecordsOne(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	d, _ := state.Open(h.e.StateDir)
	st := h.state(t)
	st.Namespace = nil
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	h.e.NetNS = "svcnat-c"
	h.mustApply(t, parse(t, web, dns))
	if ns := h.state(t).Namespace; ns == nil || ns.Name != "svcnat-c" {
		t.Fatalf("namespace recorded: %+v", ns)
	}
}
