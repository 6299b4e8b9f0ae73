package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// saves is both families' whole rules, for before/after comparisons.
func (h *testHost) saves(t *testing.T) string {
	t.Helper()
	var out string
	for _, f := range backend.Families {
		rs, err := h.fake.Save(f)
		if err != nil {
			t.Fatal(err)
		}
		out += "## " + f.String() + "\n" + rs.Text()
	}
	return out
}

// TestDestroyRemovesTablesItCreated: the foreign rules' host has nat and
// filter in IPv4 but no IPv6 tables; an IPv6 service makes apply create
// them, and destroy gives the host back exactly its tables, on nft. On
// legacy the kernel's tables stay (empty), and a table another program
// wrote to stays on both.
func TestDestroyRemovesTablesItCreated(t *testing.T) {
	const v6 = `service "default/v6" {
  cluster_ips = ["fd00:32::10"]
  port {
    port = 80
  }
  endpoint {
    address = "fd00:64::2"
  }
}
`
	for _, c := range []struct {
		backend iptables.Backend
		foreign bool // a rule of someone else's in IPv6 nat before destroy
		removed []string
	}{
		{iptables.NFT, false, []string{"IPv6 filter", "IPv6 nat"}},
		{iptables.NFT, true, []string{"IPv6 filter"}},
		{iptables.Legacy, false, nil},
	} {
		h := newHost(t)
		h.fake.SetBackend(c.backend)
		before := h.saves(t)
		h.mustApply(t, parse(t, web, v6))
		if c.foreign {
			if err := h.fake.Restore(backend.IPv6, []byte("*nat\n-A POSTROUTING -s fd00:99::/64 -j MASQUERADE\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
				t.Fatal(err)
			}
		}
		res, err := h.e.Destroy(context.Background(), "SVCNAT")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.TablesRemoved, c.removed) {
			t.Errorf("%s (foreign %v): destroy removed tables %q, want %q", c.backend, c.foreign, res.TablesRemoved, c.removed)
		}
		after := h.saves(t)
		if c.backend == iptables.NFT && !c.foreign && after != before {
			t.Errorf("nft: destroy did not give back the tables:\n--- before\n%s--- after\n%s", before, after)
		}
		// The record is spent: a second destroy removes nothing.
		if res, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil || len(res.TablesRemoved) > 0 {
			t.Errorf("%s: second destroy: %v, removed %q", c.backend, err, res.TablesRemoved)
		}
	}
}

// TestDestroyUnrecordedBackendKeepsRecord: destroy on a backend other than
// the recorded one removes that set and records nothing.
func TestDestroyUnrecordedBackendKeepsRecord(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	st := h.state(t)
	h.fake.SetBackend(iptables.Legacy) // the same fake now stands for the other backend's set
	res, err := h.e.Destroy(context.Background(), "SVCNAT")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || !res.KeptRecord || res.Generation != 0 {
		t.Fatalf("result %+v, want an applied destroy that kept the record", res)
	}
	if got := h.state(t); got.Generation != st.Generation || got.Prefix != "SVCNAT" || got.Backend != "iptables-nft" {
		t.Fatalf("state after destroying the unrecorded set: %+v, want %+v", got, st)
	}
	if rs, _ := h.fake.Save(backend.IPv4); rs.Owned("SVCNAT").RuleCount() > 0 {
		t.Fatalf("destroy left owned rules:\n%s", rs.Owned("SVCNAT").Text())
	}
}

// TestDestroyRemovesCanaryTables: reconcile's canaries go in both
// families; the IPv6 tables they created for an IPv4-only configuration
// go with destroy too (nft).
func TestDestroyRemovesCanaryTables(t *testing.T) {
	h := newHost(t)
	before := h.saves(t)
	h.mustApply(t, parse(t, web))
	if err := h.e.EnsureCanaries("SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if after := h.saves(t); after != before {
		t.Fatalf("destroy did not give back the tables the canaries created:\n--- before\n%s--- after\n%s", before, after)
	}
}
