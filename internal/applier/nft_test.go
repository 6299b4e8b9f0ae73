package applier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
	"github.com/svcnat/svcnat/internal/planner"
)

// nftTable is a table of one chain and a verdict map of n elements going
// to it, from the element first on.
func nftTable(t *testing.T, first, n int) map[backend.Family]*backend.Ruleset {
	t.Helper()
	var b strings.Builder
	b.WriteString("add table ip svcnat\nadd chain ip svcnat c\nadd rule ip svcnat c drop\n")
	b.WriteString("add map ip svcnat m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n")
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "add element ip svcnat m { 10.0.0.%d . tcp . 80 : goto c }\n", i)
	}
	rs, err := backend.ParseNFT(backend.IPv4, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rs.Tables[0].Chains {
		if c.Kind != backend.KindChain {
			backend.SortElements(c.Rules)
		}
	}
	return map[backend.Family]*backend.Ruleset{backend.IPv4: rs}
}

func nftLive(t *testing.T, k *nftables.Fake) map[backend.Family]*backend.Ruleset {
	t.Helper()
	rs, err := k.Read(backend.IPv4, &backend.Ruleset{Family: backend.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	return map[backend.Family]*backend.Ruleset{backend.IPv4: rs}
}

// TestVerifyReadsChangedElementsOnly: a map changed in place is verified
// by the elements the transaction wrote or removed, read by key
// (backend.ElementReader): an element it never named may change
// meanwhile without failing the apply, as a chain it never named may; one
// it wrote that is not there as planned fails it, and it is rolled back.
func TestVerifyReadsChangedElementsOnly(t *testing.T) {
	ctx := context.Background()
	k := nftables.NewFake(prefix)
	live := nftLive(t, k)
	if err := Apply(ctx, k, planner.New(prefix, nftables.Name, nftTable(t, 1, 50), live), live, Options{}); err != nil {
		t.Fatal(err)
	}
	sneak := func(script string) Options {
		return Options{ListLimit: k.Limits().ListLimit, Step: func(s Step) error {
			if s.Kind == Check {
				return k.Run(&backend.Transaction{Family: backend.IPv4, Payload: []byte(script), Lines: 1})
			}
			return nil
		}}
	}
	// 10.0.0.1 goes, 10.0.0.51 comes; someone removes 10.0.0.30, which
	// the transaction never named.
	live = nftLive(t, k)
	p := planner.New(prefix, nftables.Name, nftTable(t, 2, 50), live)
	if err := Apply(ctx, k, p, live, sneak("delete element ip svcnat m { 10.0.0.30 . tcp . 80 }\n")); err != nil {
		t.Fatalf("an element the apply never named, changed meanwhile, failed it: %v", err)
	}
	// 10.0.0.2 goes, 10.0.0.52 comes; someone removes 10.0.0.52 again.
	live = nftLive(t, k)
	before := live[backend.IPv4].Text()
	p = planner.New(prefix, nftables.Name, nftTable(t, 3, 50), live)
	err := Apply(ctx, k, p, live, sneak("delete element ip svcnat m { 10.0.0.52 . tcp . 80 }\n"))
	var ae *Error
	if !errors.As(err, &ae) || !ae.RolledBack || !strings.Contains(err.Error(), "10.0.0.52") {
		t.Fatalf("err = %v, want the missing element found and the change rolled back", err)
	}
	if after := nftLive(t, k)[backend.IPv4].Text(); after != before {
		t.Fatalf("rules differ after the rolled-back apply:\n%s\nwant\n%s", after, before)
	}
}
