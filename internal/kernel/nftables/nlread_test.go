package nftables

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestNetlinkReadAgreesWithListing loads each of render's goldens into a
// namespace and requires the table read with its elements over netlink
// (Read, ReadChain) to be the very model nft's listing gives
// (readListing, readChainListing), and that no set needed nft for its
// elements; then again after deleting elements of every kind, with
// comments, verdicts, IPv6 ones among them, and with an element no
// decoder knows (an interval set), which falls back to nft.
func TestNetlinkReadAgreesWithListing(t *testing.T) {
	eachGolden(t, func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family) {
		same := func(step string) *backend.Ruleset {
			t.Helper()
			want, err := r.readListing(fam)
			if err != nil {
				t.Fatal(err)
			}
			got, res, err := r.readTerse(fam)
			wantRes := terseDone
			if strings.Contains(step, "interval") {
				wantRes = terseByNFT // refused at once, not tried again
			}
			if err != nil || res != wantRes {
				t.Fatalf("%s: readTerse: %v %v, want %v", step, res, err, wantRes)
			}
			if res == terseDone && got.Text() != want.Text() {
				t.Fatalf("%s: read over netlink\n%s\nnft lists\n%s", step, got.Text(), want.Text())
			}
			if got, err := r.Read(fam, want); err != nil || got.Text() != want.Text() {
				t.Fatalf("%s: Read: %v\n%s", step, err, got.Text())
			}
			for _, c := range want.Tables[0].Chains {
				if c.Kind == backend.KindChain {
					continue
				}
				rules, ok, err := r.ReadChain(fam, "svcnat", c.Name)
				if err != nil || !ok || !backend.EqualRules(rules, c.Rules) {
					t.Fatalf("%s: ReadChain %s: %v %v\n%v\nwant\n%v", step, c.Name, ok, err, rules, c.Rules)
				}
			}
			return want
		}
		live := same("loaded")
		// Delete the first element of every set and map that has
		// one: each element form goes once.
		var del strings.Builder
		for _, c := range live.Tables[0].Chains {
			if c.Kind != backend.KindChain && len(c.Rules) > 0 {
				key, _, _ := strings.Cut(c.Rules[0].Text(), " : ")
				key, _, _ = strings.Cut(key, " comment ")
				del.WriteString("delete element " + backend.NFTFamily(fam) + " svcnat " + c.Name + " { " + key + " }\n")
			}
		}
		if del.Len() == 0 {
			t.Fatal("the golden has no elements")
		}
		ns.MustExec(t, del.String(), "nft", "-f", "-")
		after := same("after deleting\n" + del.String())
		if after.Text() == live.Text() {
			t.Fatal("nothing was deleted")
		}
		// An interval set: elementDecoder does not know it, and
		// readTerse leaves the table to nft.
		addr := "10.0.0.0/8"
		typ := "ipv4_addr"
		if fam == backend.IPv6 {
			addr, typ = "fd00::/8", "ipv6_addr"
		}
		ns.MustExec(t, "add set "+backend.NFTFamily(fam)+" svcnat ranges { type "+typ+" ; flags interval ; elements = { "+addr+" } ; }\n", "nft", "-f", "-")
		same("with an interval set, which readTerse leaves to nft")
		if rules, ok, err := r.ReadChain(fam, "svcnat", "ranges"); err != nil || !ok || len(rules) != 1 || rules[0].Text() != addr {
			t.Fatalf("ReadChain of an interval set: %v %v %v", rules, ok, err)
		}
		// A set made again under its name with other types whose
		// elements have the same bytes: the declaration remembered
		// for the old one must not decode the new one's.
		nfam := backend.NFTFamily(fam)
		ns.MustExec(t, "add set "+nfam+" svcnat again { type ipv4_addr . inet_service ; elements = { 0.80.0.0 . 2560 } ; }\n", "nft", "-f", "-")
		if rules, ok, err := r.ReadChain(fam, "svcnat", "again"); err != nil || !ok || len(rules) != 1 || rules[0].Text() != "0.80.0.0 . 2560" {
			t.Fatalf("ReadChain of again: %v %v %v", rules, ok, err)
		}
		ns.MustExec(t, "delete set "+nfam+" svcnat again\nadd set "+nfam+" svcnat again { type inet_service . ipv4_addr ; elements = { 80 . 10.0.0.0 } ; }\n", "nft", "-f", "-")
		if rules, ok, err := r.ReadChain(fam, "svcnat", "again"); err != nil || !ok || len(rules) != 1 || rules[0].Text() != "80 . 10.0.0.0" {
			t.Fatalf("ReadChain of again made again: %v %v %v", rules, ok, err)
		}
		if rules, ok, err := r.ReadChain(fam, "svcnat", "no-such-set"); err != nil || ok || rules != nil {
			t.Fatalf("ReadChain of nothing: %v %v %v", rules, ok, err)
		}
	})
}
