package nftables

import (
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestReadElementsAgreesWithReadChain loads each of render's goldens into
// a namespace and requires ReadElements of every element of every set
// and map (comments, verdicts, IPv6 addresses, concatenations among them),
// asked alone, with another value, and after it is deleted, to be what
// the whole set's read (ReadChain) has of that key; and that it leaves to
// ReadChain what it cannot read by key.
func TestReadElementsAgreesWithReadChain(t *testing.T) {
	eachGolden(t, func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family) {
		nfam := backend.NFTFamily(fam)
		// Before any read remembers the declarations, nothing is
		// read by key.
		if _, ok, err := r.ReadElements(fam, "svcnat", "service-ips", nil); err != nil || ok {
			t.Fatalf("ReadElements before a Read: %v %v", ok, err)
		}
		live, err := r.Read(fam, nil)
		if err != nil {
			t.Fatal(err)
		}
		// byKey is what the whole set's read has of the keys of elems.
		byKey := func(set string, elems []backend.Rule) []backend.Rule {
			t.Helper()
			all, ok, err := r.ReadChain(fam, "svcnat", set)
			if err != nil || !ok {
				t.Fatalf("ReadChain %s: %v %v", set, ok, err)
			}
			keys := map[string]bool{}
			for _, e := range elems {
				k, _ := backend.SplitNFTElement(e.Text())
				keys[k] = true
			}
			var out []backend.Rule
			for _, e := range all {
				if k, _ := backend.SplitNFTElement(e.Text()); keys[k] {
					out = append(out, e)
				}
			}
			return out
		}
		agree := func(step, set string, elems []backend.Rule) []backend.Rule {
			t.Helper()
			got, ok, err := r.ReadElements(fam, "svcnat", set, elems)
			want := byKey(set, elems)
			if err != nil || !ok || !backend.EqualRules(got, want) {
				t.Fatalf("%s: ReadElements %s %v: %v %v\n%v\nthe whole set has\n%v", step, set, elems, ok, err, got, want)
			}
			return got
		}
		var sets []*backend.Chain
		var del strings.Builder
		read := 0
		for _, c := range live.Tables[0].Chains {
			if c.Kind == backend.KindChain || dynamicDecl(c.Policy) {
				continue
			}
			sets = append(sets, c)
			for _, e := range c.Rules {
				if got := agree("loaded", c.Name, []backend.Rule{e}); len(got) != 1 || got[0].Text() != e.Text() {
					t.Fatalf("ReadElements %s { %s }: %v", c.Name, e.Text(), got)
				}
				read++
				key, value := backend.SplitNFTElement(e.Text())
				if value != "" {
					// asked with another value, it comes with the
					// kernel's
					other := backend.NFTElementOf(c.Name, key+" : drop")
					if value == "drop" {
						other = backend.NFTElementOf(c.Name, key+" : accept")
					}
					if got := agree("another value", c.Name, []backend.Rule{other}); len(got) != 1 || got[0].Text() != e.Text() {
						t.Fatalf("ReadElements %s { %s }: %v", c.Name, other.Text(), got)
					}
				}
			}
			agree("all at once", c.Name, c.Rules)
			if len(c.Rules) > 0 {
				key, _ := backend.SplitNFTElement(c.Rules[0].Text())
				del.WriteString("delete element " + nfam + " svcnat " + c.Name + " { " + key + " }\n")
			}
		}
		if read == 0 || del.Len() == 0 {
			t.Fatal("the golden has no elements")
		}
		ns.MustExec(t, del.String(), "nft", "-f", "-")
		for _, c := range sets {
			if len(c.Rules) == 0 {
				continue
			}
			if got := agree("deleted", c.Name, c.Rules[:1]); len(got) != 0 {
				t.Fatalf("ReadElements %s of a deleted element: %v", c.Name, got)
			}
			if got := agree("after deleting", c.Name, c.Rules); len(got) != len(c.Rules)-1 {
				t.Fatalf("ReadElements %s after deleting one: %v", c.Name, got)
			}
		}
		addr, typ, host := "10.0.0.0/8", "ipv4_addr", "10.0.0.1"
		if fam == backend.IPv6 {
			addr, typ, host = "fd00::/8", "ipv6_addr", "fd00::1"
		}
		// A set of more keys than a request asks for (getBatch),
		// every third deleted: the kernel stops a request at each.
		var many, gone strings.Builder
		var asked []backend.Rule
		deleted := 0
		for i := range 3*getBatch + 5 { // the last one deleted too
			elem := fmt.Sprintf("%s . %d", host, 1000+i)
			asked = append(asked, backend.NFTElementOf("many", elem))
			fmt.Fprintf(&many, "add element %s svcnat many { %s }\n", nfam, elem)
			if i%3 == 1 {
				deleted++
				fmt.Fprintf(&gone, "delete element %s svcnat many { %s }\n", nfam, elem)
			}
		}
		ns.MustExec(t, "add set "+nfam+" svcnat many { type "+typ+" . inet_service ; }\n"+many.String(), "nft", "-f", "-")
		if _, err := r.Read(fam, nil); err != nil {
			t.Fatal(err)
		}
		if got := agree("many", "many", asked); len(got) != len(asked) {
			t.Fatalf("ReadElements many: %d of %d", len(got), len(asked))
		}
		ns.MustExec(t, gone.String(), "nft", "-f", "-")
		if got := agree("many, every third deleted", "many", asked); len(got) != len(asked)-deleted {
			t.Fatalf("ReadElements many after deleting: %d of %d", len(got), len(asked))
		}
		// What it cannot read by key is ReadChain's: a missing set, a
		// dynamic or interval one, a key not written as nft writes it.
		ns.MustExec(t, "add set "+nfam+" svcnat ranges { type "+typ+" ; flags interval ; elements = { "+addr+" } ; }\n", "nft", "-f", "-")
		if _, err := r.Read(fam, nil); err != nil {
			t.Fatal(err)
		}
		var tooMany []backend.Rule
		for i := range maxByKey + 1 {
			tooMany = append(tooMany, backend.NFTElementOf("many", fmt.Sprintf("%s . %d", host, i)))
		}
		if _, ok, err := r.ReadElements(fam, "svcnat", "many", tooMany); err != nil || ok {
			t.Fatalf("ReadElements of more than maxByKey keys: %v %v", ok, err)
		}
		for _, c := range []struct{ set, elem string }{
			{"no-such-set", "10.0.0.1"},
			{"ranges", addr},
			{"cluster-ips", "010.0.0.1"},
			{"cluster-ips", "10.0.0.1 . tcp"},
			{"cluster-ips", "::ffff:10.0.0.1"},
			{"hairpin-connections", host + " . " + host + " . 6 . 80"}, // a protocol by number
			{"hairpin-connections", host + " . " + host + " . tcp . 080"},
		} {
			got, ok, err := r.ReadElements(fam, "svcnat", c.set, []backend.Rule{backend.NFTElementOf(c.set, c.elem)})
			if err != nil || ok {
				t.Fatalf("ReadElements %s { %s }: %v %v %v", c.set, c.elem, got, ok, err)
			}
		}
	})
}
