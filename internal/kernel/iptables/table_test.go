package iptables

import (
	"errors"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// tableNames lists the tables of a family's dump.
func tableNames(t *testing.T, k Interface, fam backend.Family) string {
	t.Helper()
	rs, err := k.Save(fam)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range rs.Tables {
		names = append(names, tb.Name)
	}
	return strings.Join(names, " ")
}

// TestRemoveTable: on nft an empty table goes (and only it), a table with a
// rule, a user chain or a DROP policy stays with backend.ErrTableInUse, a missing
// one is no error; legacy keeps its tables (backend.ErrKernelTable). The real
// runner and the Fake agree.
func TestRemoveTable(t *testing.T) {
	kernels := map[string]func(t *testing.T, b Backend) Interface{
		"fake": func(t *testing.T, b Backend) Interface { f := NewFake(); f.SetBackend(b); return f },
		"real": func(t *testing.T, b Backend) Interface { return realIPT(t, testns.New(t), b) },
	}
	for name, open := range kernels {
		for _, b := range backends {
			t.Run(name+"/"+string(b), func(t *testing.T) {
				k := open(t, b)
				mustRestore(t, k, backend.IPv4, "*nat\n:X - [0:0]\n-X X\nCOMMIT\n*filter\n-A INPUT -j ACCEPT\nCOMMIT\n")
				tr := k
				done, err := tr.RemoveTable(backend.IPv4, "nat")
				if b == Legacy {
					if done || !errors.Is(err, backend.ErrKernelTable) {
						t.Fatalf("legacy RemoveTable = %v, %v; want backend.ErrKernelTable", done, err)
					}
					return
				}
				if !done || err != nil || tableNames(t, k, backend.IPv4) != "filter" {
					t.Fatalf("RemoveTable(nat) = %v, %v; tables left: %s", done, err, tableNames(t, k, backend.IPv4))
				}
				if done, err := tr.RemoveTable(backend.IPv4, "nat"); done || err != nil {
					t.Fatalf("RemoveTable of a missing table = %v, %v", done, err)
				}
				for _, payload := range []string{
					"*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", // the rule of the setup is there
					"*mangle\n:M - [0:0]\nCOMMIT\n",
					"*raw\n:OUTPUT DROP [0:0]\nCOMMIT\n",
				} {
					if !strings.HasPrefix(payload, "*filter") {
						mustRestore(t, k, backend.IPv4, payload)
					}
					table := strings.TrimPrefix(strings.SplitN(payload, "\n", 2)[0], "*")
					if done, err := tr.RemoveTable(backend.IPv4, table); done || !errors.Is(err, backend.ErrTableInUse) {
						t.Fatalf("RemoveTable(%s) of a table in use = %v, %v; want backend.ErrTableInUse", table, done, err)
					}
				}
			})
		}
	}
}

// TestLegacyReadChainCreatesNoTable: reading a chain of a legacy table
// that does not exist says so, and does not create the table (naming it
// to iptables would).
func TestLegacyReadChainCreatesNoTable(t *testing.T) {
	ns := testns.New(t)
	k := realIPT(t, ns, Legacy)
	for _, fam := range backend.Families {
		if _, ok, err := k.ReadChain(fam, "nat", "SVCNAT-CANARY"); ok || err != nil {
			t.Fatalf("%s ReadChain of a missing table = %v, %v", fam, ok, err)
		}
		if names := tableNames(t, k, fam); names != "" {
			t.Fatalf("%s ReadChain created tables: %s", fam, names)
		}
	}
}
