package nftables

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestNetlinkChainsAgreeWithListing loads each of render's goldens into
// a namespace and requires every chain nlChain reads over netlink to be
// what nft lists, and every chain but the base chains and those whose
// rules hold an anonymous set to be read so; a service chain once a rule
// of it has a shape svcnat does not write (a counter added, a rule
// inserted) is left to nft, and ReadChain still reads it right.
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
			base := strings.Contains(c.Policy, " hook ")
			// Every chain but a base chain, and one whose rules hold an
			// anonymous set (a firewall's source ranges), which are nft's.
			ours := !base
			for _, r := range c.Rules {
				if strings.Contains(r.Text(), "{") && !strings.Contains(r.Text(), "@affinity {") {
					ours = false
				}
			}
			switch {
			case ok && (!exists || !backend.EqualRules(rules, c.Rules)):
				t.Fatalf("%s over netlink (exists %v):\n%v\nnft lists\n%v", c.Name, exists, rules, c.Rules)
			case !ok && ours:
				t.Errorf("%s was left to nft: %v", c.Name, c.Rules)
			}
			if base && ok {
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

// TestReadSplitAgreesWithListing: on each render golden, with another
// program's table of the same family beside svcnat's, readSplit (nft's
// declarations, netlink's rules and elements) reads the very model
// nft's listing gives, or, where a rule holds an anonymous set (a
// firewall's source ranges), leaves the table to nft.
func TestReadSplitAgreesWithListing(t *testing.T) {
	eachGolden(t, func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family) {
		nfam := backend.NFTFamily(fam)
		ns.MustExec(t, "add table "+nfam+" other\nadd chain "+nfam+" other c { type filter hook input priority 0 ; }\n"+
			"add rule "+nfam+" other c counter accept\nadd map "+nfam+" other m { type inet_service : verdict ; }\nadd set "+nfam+" other s { type inet_service ; }\n",
			"nft", "-f", "-")
		want, err := r.readListing(fam)
		if err != nil {
			t.Fatal(err)
		}
		anonymous := strings.Contains(want.Text(), "!= {")
		got, res, err := r.readSplit(fam)
		switch {
		case err != nil:
			t.Fatal(err)
		case anonymous && res != terseByNFT:
			t.Fatalf("a table with an anonymous set: %v", res)
		case !anonymous && res != terseDone:
			t.Fatalf("readSplit: %v", res)
		case !anonymous && got.Text() != want.Text():
			t.Fatalf("readSplit\n%s\nnft lists\n%s", got.Text(), want.Text())
		}
		if got, err := r.Read(fam, want); err != nil || got.Text() != want.Text() {
			t.Fatalf("Read: %v\n%s", err, got.Text())
		}
	})
}
