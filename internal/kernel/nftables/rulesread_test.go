package nftables

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestNetlinkChainsAgreeWithListing loads each of render's goldens into
// a namespace and requires every chain nlChain reads over netlink to be
// what nft lists, and every service, local and dispatch chain to be
// read so (those are the chains a health verdict rewrites); a base
// chain and a chain with comments are left to nft, as is a service
// chain once a rule of it has a shape svcnat does not write (a counter
// added, a rule inserted), which ReadChain still reads right, from nft.
func TestNetlinkChainsAgreeWithListing(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	edited := 0
	defer func() {
		if !t.Failed() && edited == 0 {
			t.Error("no golden has a service chain of one rule to edit")
		}
	}()
	eachGolden(t, func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family) {
		want, err := r.readListing(fam)
		if err != nil {
			t.Fatal(err)
		}
		var svc string
		for _, c := range want.Tables[0].Chains {
			if c.Kind != backend.KindChain {
				continue
			}
			rules, exists, ok, err := r.nlChain(fam, "svcnat", c.Name)
			if err != nil {
				t.Fatal(err)
			}
			perService := strings.Contains(c.Name, "/") // kube-proxy's isServiceChainName
			ours := perService && (strings.HasPrefix(c.Name, "service-") || strings.HasPrefix(c.Name, "local-")) || strings.HasPrefix(c.Name, "dispatch-")
			switch {
			case ok && (!exists || !backend.EqualRules(rules, c.Rules)):
				t.Fatalf("%s over netlink (exists %v):\n%v\nnft lists\n%v", c.Name, exists, rules, c.Rules)
			case !ok && ours:
				t.Errorf("%s was left to nft: %v", c.Name, c.Rules)
			}
			if c.Policy != "" && ok {
				t.Errorf("%s, a base chain, was read over netlink", c.Name)
			}
			if perService && strings.HasPrefix(c.Name, "service-") && len(c.Rules) == 1 {
				svc = c.Name
			}
		}
		if svc == "" {
			return // no service chain of one rule to edit (chainless ports only)
		}
		edited++
		if rules, exists, ok, err := r.nlChain(fam, "svcnat", "no-such-chain"); err != nil || !ok || exists || rules != nil {
			t.Fatalf("a chain that is not: %v %v %v %v", rules, exists, ok, err)
		}
		nfam := backend.NFTFamily(fam)
		for _, edit := range []string{
			"insert rule " + nfam + " svcnat " + svc + " counter",
			"insert rule " + nfam + " svcnat " + svc + " meta l4proto tcp counter",
			"add rule " + nfam + " svcnat " + svc + " meta l4proto udp dnat " + nfam + " to numgen random mod 2 offset 7 map @endpoints-udp-0",
		} {
			ns.MustExec(t, "add map "+nfam+" svcnat endpoints-udp-0 { typeof numgen random mod 1 : "+nfam+" daddr . udp dport ; }\n"+edit+"\n", "nft", "-f", "-")
			if _, _, ok, err := r.nlChain(fam, "svcnat", svc); err != nil || ok && !strings.Contains(edit, "dnat") {
				t.Fatalf("after %q: read over netlink %v, %v", edit, ok, err)
			}
			live, err := r.readListing(fam)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := r.ReadChain(fam, "svcnat", svc)
			if err != nil || !ok || !backend.EqualRules(got, live.Tables[0].Chain(svc).Rules) {
				t.Fatalf("after %q: ReadChain %v %v\n%v\nnft lists\n%v", edit, ok, err, got, live.Tables[0].Chain(svc).Rules)
			}
		}
	})
}
