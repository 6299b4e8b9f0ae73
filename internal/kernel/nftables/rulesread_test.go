package nftables

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestNetlinkChainsAgreeWithListing loads each of render's goldens into
// a namespace and requires every chain to be read by nlChain over
// netlink as nft lists it (a firewall's anonymous set of source ranges
// too); a service chain once a rule of it has a shape
// svcnat does not write (a counter added, a rule inserted) is left to
// nft, and ReadChain still reads it right.
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
			switch {
			case ok && (!exists || !backend.EqualRules(rules, c.Rules)):
				t.Fatalf("%s over netlink (exists %v):\n%v\nnft lists\n%v", c.Name, exists, rules, c.Rules)
			case !ok:
				t.Errorf("%s was left to nft: %v", c.Name, c.Rules)
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
// declarations, netlink's rules and elements, a firewall's anonymous set
// of source ranges too) reads the very model nft's listing gives; with a
// rule svcnat does not write, it leaves the table to nft, and Read still
// reads it right.
func TestReadSplitAgreesWithListing(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	anonymous := 0
	defer func() {
		if !t.Failed() && anonymous == 0 {
			t.Error("no golden has a firewall chain's anonymous set of several source ranges")
		}
	}()
	eachGolden(t, func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family) {
		nfam := backend.NFTFamily(fam)
		ns.MustExec(t, "add table "+nfam+" other\nadd chain "+nfam+" other c { type filter hook input priority 0 ; }\n"+
			"add rule "+nfam+" other c counter accept\nadd map "+nfam+" other m { type inet_service : verdict ; }\nadd set "+nfam+" other s { type inet_service ; }\n",
			"nft", "-f", "-")
		want, err := r.readListing(fam)
		if err != nil {
			t.Fatal(err)
		}
		got, res, err := r.readSplit(fam)
		switch {
		case err != nil:
			t.Fatal(err)
		case res != terseDone:
			t.Fatalf("readSplit: %v", res)
		case got.Text() != want.Text():
			t.Fatalf("readSplit\n%s\nnft lists\n%s", got.Text(), want.Text())
		}
		if strings.Contains(want.Text(), "!= {") {
			anonymous++
		}
		// A rule svcnat does not write leaves the table to nft.
		ns.MustExec(t, "add chain "+nfam+" svcnat extra\nadd rule "+nfam+" svcnat extra counter\n", "nft", "-f", "-")
		if _, res, err := r.readSplit(fam); err != nil || res != terseByNFT {
			t.Fatalf("with a counter rule: %v %v", res, err)
		}
		want, err = r.readListing(fam)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.Read(fam, want); err != nil || got.Text() != want.Text() {
			t.Fatalf("Read: %v\n%s", err, got.Text())
		}
	})
}

// TestNetlinkReadsPrefixes: address matches of every prefix length kind
// (whole bytes, inside a byte, a whole address, IPv6), anonymous sets of
// addresses, prefixes and ranges, and the canary's "return" are read
// over netlink as nft lists them. (A set reaching the last address, which the kernel keeps
// without an end, is left to nft.)
func TestNetlinkReadsPrefixes(t *testing.T) {
	r, ns := needKernel(t)
	for _, c := range []struct {
		fam   backend.Family
		rules []string
	}{
		{backend.IPv4, []string{
			"ip saddr 10.0.0.0/8 goto x", "ip saddr != 10.64.0.0/12 goto x", "ip saddr 10.64.0.0/14 goto x",
			"ip daddr 10.64.0.0/20 drop", "ip daddr != 10.64.0.0/31 drop", "ip saddr 192.0.2.7 drop", "ip daddr != 127.0.0.0/8 drop",
			"ip saddr != { 192.0.2.0/24, 198.51.100.7, 203.0.113.0/25 } drop",
			"ip saddr { 10.0.0.1-10.0.0.5, 10.0.1.0/24, 10.0.2.0/23 } drop", // nft merges the two into a range
			"return", // reconcile's canary's rule
		}},
		{backend.IPv6, []string{
			"ip6 saddr fd00:10::/64 goto x", "ip6 saddr != fd00::/7 goto x", "ip6 daddr != ::1 drop", "ip6 saddr 2001:db8::/61 drop",
			"ip6 saddr != { 2001:db8:1::/64, 2001:db8:2::61 } drop",
		}},
	} {
		nfam := backend.NFTFamily(c.fam)
		script := "add table " + nfam + " svcnat\nadd chain " + nfam + " svcnat x\nadd chain " + nfam + " svcnat p\n"
		for _, rule := range c.rules {
			script += "add rule " + nfam + " svcnat p " + rule + "\n"
		}
		ns.MustExec(t, script, "nft", "-f", "-")
		want, _, err := r.readChainListing(c.fam, "svcnat", "p", []string{"chain"})
		if err != nil {
			t.Fatal(err)
		}
		got, exists, ok, err := r.nlChain(c.fam, "svcnat", "p")
		if err != nil || !ok || !exists || !backend.EqualRules(got, want) {
			t.Fatalf("%s: over netlink %v %v %v\n%v\nnft lists\n%v", nfam, exists, ok, err, got, want)
		}
	}
	// An IPv4-compatible IPv6 address: nft prints it with glibc's
	// inet_ntop ("::10.0.0.1"), Go otherwise; left to nft.
	ns.MustExec(t, "add chain ip6 svcnat q\nadd rule ip6 svcnat q ip6 saddr ::a00:1 drop\n", "nft", "-f", "-")
	if _, _, ok, err := r.nlChain(backend.IPv6, "svcnat", "q"); err != nil || ok {
		t.Fatalf("an IPv4-compatible address was read over netlink: %v %v", ok, err)
	}
	want, _, err := r.readChainListing(backend.IPv6, "svcnat", "q", []string{"chain"})
	if got, ok, err2 := r.ReadChain(backend.IPv6, "svcnat", "q"); err != nil || err2 != nil || !ok || !backend.EqualRules(got, want) {
		t.Fatalf("ReadChain of an IPv4-compatible address: %v %v\n%v\nnft lists\n%v", err, err2, got, want)
	}
}
