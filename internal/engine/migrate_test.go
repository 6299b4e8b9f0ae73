package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
	"github.com/svcnat/svcnat/internal/planner"
)

// migrateHost is a host with both backends' fakes: the iptables one of
// newHost (Docker's rules, a state directory) and an empty nftables one.
type migrateHost struct {
	*testHost
	nft *nftables.Fake
}

func newMigrateHost(t *testing.T) *migrateHost {
	t.Helper()
	return &migrateHost{testHost: newHost(t), nft: nftables.NewFake("SVCNAT")}
}

// on makes the engine work on k, as kernel.Open would open it.
func (h *migrateHost) on(k backend.Kernel) { h.e.Kernel = k }

// owned is what k holds of svcnat's, as text.
func owned(t *testing.T, k backend.Kernel) string {
	t.Helper()
	var out string
	for _, f := range backend.Families {
		rs, err := k.Read(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		out += rs.Owned("SVCNAT").Text()
	}
	return out
}

// TestMigrateIPTablesToNFTablesAndBack: apply on iptables-nft, then
// Migrate to nftables shows both plans, asks once, leaves the rules in
// nftables only with the record naming it, gives back the tables the
// iptables applies created (IPv6 nat and filter), and the reverse brings
// the rules back and gives back svcnat's table.
func TestMigrateIPTablesToNFTablesAndBack(t *testing.T) {
	h := newMigrateHost(t)
	before := h.saves(t)
	cfg := parse(t, web, `service "default/v6" {
  cluster_ips = ["fd00:32::10"]
  port {
    port = 80
  }
  endpoint {
    address = "fd00:64::2"
  }
}
`)
	h.mustApply(t, cfg)
	iptRules := owned(t, h.fake)
	h.planned, h.asked = nil, 0

	h.on(h.nft)
	res, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.planned) != 2 || h.planned[0].Removal || !h.planned[1].Removal ||
		h.planned[0].Plan.Backend != nftables.Name || h.planned[1].Plan.Backend != iptables.NFT {
		t.Fatalf("planned %+v, want the nftables plan then the iptables-nft removal", h.planned)
	}
	if h.asked != 1 {
		t.Errorf("asked %d times, want once", h.asked)
	}
	m := res.MigratedFrom
	if !res.Applied || res.Generation != 2 || m == nil || !m.Removed || m.From != iptables.NFT {
		t.Fatalf("result %+v (migrated from %+v), want generation 2 applied and the old set removed", res, m)
	}
	if want := []string{"IPv6 filter", "IPv6 nat"}; !slices.Equal(m.TablesRemoved, want) {
		t.Errorf("tables given back %q, want %q", m.TablesRemoved, want)
	}
	if after := h.saves(t); after != before {
		t.Errorf("the iptables rules after the migration are not the host's own:\n--- before\n%s--- after\n%s", before, after)
	}
	if rs, _ := h.nft.Read(backend.IPv4, nil); rs.Table("svcnat") == nil || len(rs.Table("svcnat").Chains) == 0 {
		t.Fatalf("nftables holds no ip svcnat table:\n%s", rs.Text())
	}
	if st := h.state(t); st.Backend != nftables.Name || st.Generation != 2 || st.Prefix != "SVCNAT" {
		t.Fatalf("state %+v, want generation 2 on nftables", st)
	}
	// The migration is done: a plan on nftables is empty.
	if p, err := h.e.Plan(cfg, "n1"); err != nil || !p.Empty() {
		t.Fatalf("plan after the migration: %v, empty %v", err, p != nil && p.Empty())
	}

	// And back: the old rules come back, svcnat's table goes.
	h.planned, h.asked = nil, 0
	h.on(h.fake)
	res, err = h.e.Migrate(context.Background(), cfg, "n1", h.nft)
	if err != nil {
		t.Fatal(err)
	}
	if h.asked != 1 || len(h.planned) != 2 || res.MigratedFrom.From != nftables.Name || !res.MigratedFrom.Removed {
		t.Fatalf("asked %d, planned %d, result %+v", h.asked, len(h.planned), res.MigratedFrom)
	}
	if got := owned(t, h.fake); got != iptRules {
		t.Errorf("iptables rules after migrating back:\n%s\nwant\n%s", got, iptRules)
	}
	for _, f := range backend.Families {
		if rs, _ := h.nft.Read(f, nil); len(rs.Tables) > 0 {
			t.Errorf("nftables %s still has tables after migrating back:\n%s", f, rs.Text())
		}
	}
	if st := h.state(t); st.Backend != iptables.NFT || st.Generation != 3 {
		t.Fatalf("state %+v, want generation 3 on iptables-nft", st)
	}
}

// TestMigrateDeclinedChangesNothing: one "no" and both backends are as
// they were.
func TestMigrateDeclinedChangesNothing(t *testing.T) {
	h := newMigrateHost(t)
	cfg := parse(t, web)
	h.mustApply(t, cfg)
	before := h.saves(t)
	h.e.Hooks.Approve = func(context.Context, *planner.Plan) (bool, error) { return false, nil }
	h.on(h.nft)
	if _, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake); !errors.Is(err, ErrCancelled) {
		t.Fatalf("err %v, want ErrCancelled", err)
	}
	if h.saves(t) != before || owned(t, h.nft) != "" || h.nft.Runs() != 0 {
		t.Fatal("a declined migration changed the rules")
	}
}

// TestMigrateRefusesUnprovenOldChainsBeforeAnyWrite: an iptables chain
// of the prefix that no generation recorded refuses the migration, as it
// refuses destroy, before nftables is written.
func TestMigrateRefusesUnprovenOldChainsBeforeAnyWrite(t *testing.T) {
	h := newMigrateHost(t)
	cfg := parse(t, web)
	h.mustApply(t, cfg)
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n:SVCNAT-SVC-STRANGER0000000 - [0:0]\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	before := h.saves(t)
	h.planned = nil
	h.on(h.nft)
	_, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake)
	var ue *UnrecordedError
	if !errors.As(err, &ue) || !slices.Contains(ue.Chains, "IPv4 nat SVCNAT-SVC-STRANGER0000000") {
		t.Fatalf("err %v, want an UnrecordedError naming the stranger", err)
	}
	if len(h.planned) != 2 || h.planned[1].Refusal == nil {
		t.Errorf("planned %+v, want both plans shown, the removal refused", h.planned)
	}
	if h.saves(t) != before || h.nft.Runs() != 0 || h.asked > 1 {
		t.Fatalf("a refused migration changed something (nftables runs %d)", h.nft.Runs())
	}
	if st := h.state(t); st.Backend != iptables.NFT || st.Generation != 1 {
		t.Fatalf("state %+v changed", st)
	}
}

// TestMigrateFailingRemovalKeepsTheNewSet: when removing the old set
// fails, the new set stays recorded and live, and the error says both
// are live and how to finish.
func TestMigrateFailingRemovalKeepsTheNewSet(t *testing.T) {
	h := newMigrateHost(t)
	cfg := parse(t, web)
	h.mustApply(t, cfg)
	old := owned(t, h.fake)
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-X SVCNAT-") })
	h.on(h.nft)
	res, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake)
	var me *MigrationError
	if !errors.As(err, &me) || me.From != iptables.NFT || me.Generation != 2 {
		t.Fatalf("err %v, want a MigrationError from iptables-nft at generation 2", err)
	}
	if !strings.Contains(err.Error(), "both sets are live") || !strings.Contains(me.Hint(), "svcnat destroy --backend iptables-nft") {
		t.Errorf("error %q, hint %q", err, me.Hint())
	}
	if res == nil || !res.Applied || res.MigratedFrom == nil || res.MigratedFrom.Removed {
		t.Fatalf("result %+v", res)
	}
	if owned(t, h.fake) != old {
		t.Error("the failed removal did not roll back to the old set")
	}
	if owned(t, h.nft) == "" {
		t.Error("the new set is gone")
	}
	if st := h.state(t); st.Backend != nftables.Name || st.Generation != 2 {
		t.Fatalf("state %+v, want generation 2 on nftables", st)
	}
	// Destroy on the old backend finishes it and keeps the record.
	h.fake.FailWhen(nil)
	h.on(h.fake)
	dres, err := h.e.Destroy(context.Background(), "SVCNAT")
	if err != nil || !dres.KeptRecord {
		t.Fatalf("destroy --backend iptables-nft: %v, %+v", err, dres)
	}
	if owned(t, h.fake) != "" {
		t.Error("destroy left the old set")
	}
}

// TestMigrateRefusesConfirmTimeout: a migration cannot await
// confirmation.
func TestMigrateRefusesConfirmTimeout(t *testing.T) {
	h := newMigrateHost(t)
	cfg := parse(t, web)
	h.mustApply(t, cfg)
	h.e.Confirmation = &ConfirmOptions{}
	h.on(h.nft)
	var ce *MigrationConfirmError
	if _, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake); !errors.As(err, &ce) {
		t.Fatalf("err %v, want a MigrationConfirmError", err)
	}
	if owned(t, h.nft) != "" {
		t.Fatal("the refused migration wrote nftables")
	}
}

// TestFailedFirstApplyGivesBackTheTable: a first apply on nftables whose
// IPv6 transaction the kernel refuses, after IPv4's committed, is rolled
// back, and the IPv4 table it made goes too: its presence alone would
// make the next auto choose nftables.
func TestFailedFirstApplyGivesBackTheTable(t *testing.T) {
	h := newMigrateHost(t)
	h.on(h.nft)
	h.nft.FailWhen(func(line string) bool { return strings.HasPrefix(line, "add element ip6 ") })
	cfg := parse(t, web, `service "default/v6" {
  cluster_ips = ["fd00:32::10"]
  port {
    port = 80
  }
  endpoint {
    address = "fd00:64::2"
  }
}
`)
	if _, err := h.e.Apply(context.Background(), cfg, "n1"); err == nil {
		t.Fatal("the apply did not fail")
	}
	for _, f := range backend.Families {
		rs, err := h.nft.Read(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.Tables) != 0 {
			t.Errorf("%s: the failed apply left %s", f, rs.Text())
		}
	}
}

// TestRollbackAcrossAMigrationIsRefused: after a migration the previous
// generation is the other backend's rules; rollback refuses to write them
// here, naming the way back, and changes nothing.
func TestRollbackAcrossAMigrationIsRefused(t *testing.T) {
	h := newMigrateHost(t)
	cfg := parse(t, web)
	h.mustApply(t, cfg)
	h.on(h.nft)
	if _, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake); err != nil {
		t.Fatal(err)
	}
	before := owned(t, h.nft)
	_, err := h.e.Rollback(context.Background(), "SVCNAT")
	var cross *CrossBackendRollbackError
	if !errors.As(err, &cross) || cross.Recorded != iptables.NFT || !strings.Contains(cross.Hint(), "--backend iptables-nft") {
		t.Fatalf("rollback across the migration: %v", err)
	}
	if got := owned(t, h.nft); got != before {
		t.Fatalf("a refused rollback changed the rules:\n%s", got)
	}
}
