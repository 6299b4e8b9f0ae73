package nftables

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestColdStartWritesElementsOverNetlink: a cold start of every render
// golden (its table gone, then created again), with the elements written
// over netlink after nft -f declared the table, reads back as nft loading
// the golden whole made it; a start over a table that exists, and a
// rollback's transaction (Whole), go to nft whole.
func TestColdStartWritesElementsOverNetlink(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	cold := 0
	eachGolden(t, func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family) {
		live, err := r.Read(fam, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := live.Owned(testPrefix)
		ns.MustExec(t, "", "nft", "delete", "table", backend.NFTFamily(fam), "svcnat")
		empty := &backend.Ruleset{Family: fam, Syntax: backend.NFTables}
		p := planner.New(testPrefix, Name, map[backend.Family]*backend.Ruleset{fam: want}, map[backend.Family]*backend.Ruleset{fam: empty})
		_, final := r.Transactions(fam, p.Changes, backend.NoStaging)
		r.Write(final)
		sets, ok, err := r.coldStart(final)
		if err != nil || !ok || len(sets) == 0 {
			t.Fatalf("the golden's cold start writes no elements over netlink: %v", err)
		}
		final.Whole = true
		if _, ok, err := r.coldStart(final); ok || err != nil {
			t.Fatalf("a Whole transaction is a cold start: %v", err)
		}
		final.Whole = false
		cold++
		if err := r.Run(final); err != nil {
			t.Fatalf("%v\n%s", err, final.Payload)
		}
		got, err := r.Read(fam, want)
		if err != nil {
			t.Fatal(err)
		}
		if got.Text() != want.Text() {
			t.Fatalf("cold start (elements over netlink: %v) read back\n%s\nnft -f of the golden made\n%s", ok, got.Text(), want.Text())
		}
		// Now the table exists: nothing is a cold start.
		if _, ok, err := r.coldStart(final); ok || err != nil {
			t.Fatalf("a start over the live table is a cold start: %v", err)
		}
	})
	if cold == 0 {
		t.Error("no golden's cold start wrote elements over netlink")
	}
}

// TestColdStartFailureRollsBack: when the kernel refuses the netlink
// batch of elements (a verdict to a chain that does not exist), after nft
// -f made the table, the apply fails and its rollback removes what nft
// made:
// the table is left empty, as after a failed single transaction.
func TestColdStartFailureRollsBack(t *testing.T) {
	r, ns := needKernel(t)
	want := desired(t, hclCase(t, "dual_stack"), backend.IPv4)
	broken := false
	for _, c := range want.Tables[0].Chains {
		if c.Name != "service-ips" || len(c.Rules) == 0 {
			continue
		}
		key, _, _ := strings.Cut(c.Rules[0].Text(), " : ")
		c.Rules[0] = backend.NFTElementOf(c.Name, key+" : goto no-such-chain")
		broken = true
	}
	if !broken {
		t.Fatal("the golden has no service-ips element to break")
	}
	empty := &backend.Ruleset{Family: backend.IPv4, Syntax: backend.NFTables}
	live := map[backend.Family]*backend.Ruleset{backend.IPv4: empty}
	p := planner.New(testPrefix, Name, map[backend.Family]*backend.Ruleset{backend.IPv4: want}, live)
	err := applier.Apply(context.Background(), r, p, live, applier.Options{})
	// The batch refused, nft is given the elements and names the one the
	// kernel refuses.
	var ae *applier.Error
	if !errors.As(err, &ae) || !ae.RolledBack || !strings.Contains(err.Error(), "over netlink") || !strings.Contains(err.Error(), "goto no-such-chain") {
		t.Fatalf("apply with an element the kernel refuses: %v, want nft's error naming it and the netlink batch's, rolled back", err)
	}
	// The table is the engine's to give back (giveBackNewTables), as
	// after any failed apply that created it: its objects are gone.
	if out, err := ns.Exec("", "nft", "list", "table", "ip", "svcnat"); err != nil || strings.Contains(out, "chain ") || strings.Contains(out, "map ") || strings.Contains(out, "set ") {
		t.Fatalf("after the rollback (%v):\n%s", err, out)
	}
}

// TestColdStartOfManyMessages: a batch of thousands of messages — each
// acknowledged, the acknowledgements overflowing a default receive buffer
// (30,000 services made 900) — commits and reads back whole.
func TestColdStartOfManyMessages(t *testing.T) {
	r, _ := needKernel(t)
	old := elementsPerMessage
	elementsPerMessage = 1 // one element a message
	t.Cleanup(func() { elementsPerMessage = old })
	var b strings.Builder
	b.WriteString("add table ip svcnat\nadd chain ip svcnat c\nadd map ip svcnat m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "add element ip svcnat m { 10.0.%d.%d . tcp . 80 : goto c }\n", i/250, i%250+1)
	}
	want, err := backend.ParseNFT(backend.IPv4, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range want.Tables[0].Chains {
		if c.Kind != backend.KindChain {
			backend.SortElements(c.Rules)
		}
	}
	// addElements itself, not Run, which would hand a failed batch to
	// nft.
	empty := &backend.Ruleset{Family: backend.IPv4, Syntax: backend.NFTables}
	p := planner.New(testPrefix, Name, map[backend.Family]*backend.Ruleset{backend.IPv4: want}, map[backend.Family]*backend.Ruleset{backend.IPv4: empty})
	_, final := r.Transactions(backend.IPv4, p.Changes, backend.NoStaging)
	sets, ok, err := r.coldStart(final)
	if err != nil || !ok {
		t.Fatalf("not a cold start: %v", err)
	}
	head, _ := writeScript(final, withoutElements)
	if err := r.runScript(backend.IPv4, head); err != nil {
		t.Fatal(err)
	}
	if err := r.addElements(backend.IPv4, sets); err != nil {
		t.Fatal(err)
	}
	got, err := r.Read(backend.IPv4, want)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text() != want.Text() {
		t.Fatalf("read back %d rules and elements, want %d", got.RuleCount(), want.RuleCount())
	}
}
