package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// Canaries are created in nat and filter of both families, are invisible
// to plans, vanish with a flush, and go with destroy.
func TestCanaries(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	if m, err := h.e.MissingCanaries("SVCNAT"); err != nil || len(m) != 4 {
		t.Fatalf("missing before any: %v, %v", m, err)
	}
	if err := h.e.EnsureCanaries("SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if m, err := h.e.MissingCanaries("SVCNAT"); err != nil || len(m) != 0 {
		t.Fatalf("missing after EnsureCanaries: %v, %v", m, err)
	}
	if p, err := h.e.Plan(parse(t, web), "n1"); err != nil || !p.Empty() {
		t.Fatalf("a plan beside the canaries: %v, %+v", err, p)
	}
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n-F\n-X SVCNAT-CANARY\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	if m, _ := h.e.MissingCanaries("SVCNAT"); len(m) != 1 || m[0].String() != "IPv4 nat" {
		t.Fatalf("missing after a flush: %v", m)
	}
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h.text(t), "SVCNAT") {
		t.Fatalf("destroy left:\n%s", h.text(t))
	}
}

// racingKernel is the fake, with a hook run before each transaction and a
// count of the chains read.
type racingKernel struct {
	*iptables.Fake
	beforeRestore func(f backend.Family, payload []byte)
	listed        int
}

func (k *racingKernel) Run(tx *backend.Transaction) error {
	if k.beforeRestore != nil {
		k.Write(tx)
		k.beforeRestore(tx.Family, tx.Payload)
	}
	return k.Fake.Run(tx)
}

func (k *racingKernel) ReadChain(f backend.Family, table, chain string) ([]backend.Rule, bool, error) {
	k.listed++
	return k.Fake.ReadChain(f, table, chain)
}

// TestCanaryTablesRecordedWithTheChains: a destroy that comes while
// EnsureCanaries creates the canaries waits for it (here: is refused, as
// it does not wait), so that no canary recreates a table the destroy has
// forgotten; the last destroy then gives the host back its tables.
func TestCanaryTablesRecordedWithTheChains(t *testing.T) {
	h := newHost(t)
	before := h.saves(t)
	h.mustApply(t, parse(t, web))
	k := &racingKernel{Fake: h.fake}
	e := *h.e
	e.Kernel = k
	other := &Engine{Host: Host{Kernel: h.fake}, StateDir: h.e.StateDir} // LockTimeout 0: no wait
	var raced []error
	k.beforeRestore = func(f backend.Family, payload []byte) {
		if strings.Contains(string(payload), "CANARY") && len(raced) == 0 {
			_, err := other.Destroy(context.Background(), "SVCNAT")
			raced = append(raced, err)
		}
	}
	if err := e.EnsureCanaries("SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if len(raced) != 1 || !errors.Is(raced[0], ErrLocked) {
		t.Errorf("a destroy while the canaries are created: %v, want it refused by the lock", raced)
	}
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if after := h.saves(t); after != before {
		t.Fatalf("destroy did not give back the tables the canaries created:\n--- before\n%s--- after\n%s", before, after)
	}
}

// TestEnsureCanariesListsOnce: reconcile calls EnsureCanaries at every
// pass; when nothing is missing it reads each canary once and writes
// nothing.
func TestEnsureCanariesListsOnce(t *testing.T) {
	h := newHost(t)
	k := &racingKernel{Fake: h.fake}
	h.e.Kernel = k
	h.mustApply(t, parse(t, web))
	if err := h.e.EnsureCanaries("SVCNAT"); err != nil {
		t.Fatal(err)
	}
	restored := 0
	k.beforeRestore = func(backend.Family, []byte) { restored++ }
	k.listed = 0
	if err := h.e.EnsureCanaries("SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if want := len(backend.Families) * len(h.e.canaryPlaces("SVCNAT")); k.listed != want || restored != 0 {
		t.Fatalf("a pass with every canary there listed %d chains (want %d) and restored %d times", k.listed, want, restored)
	}
}
