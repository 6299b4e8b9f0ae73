package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/rules"
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
	if err := h.fake.Restore(rules.IPv4, []byte("*nat\n-F\n-X SVCNAT-CANARY\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
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
