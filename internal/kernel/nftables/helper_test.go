package nftables

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/planner"
)

// The helpers below turn package render's output into the model as the
// kernel lists it (render.AsListed).

// testPrefix owns the table "svcnat", render's DefaultTable.
const testPrefix = "SVCNAT"

// renderOptions are render's upstream test options (render_test.go).
func renderOptions() render.Options {
	var local []netip.Addr
	for _, s := range []string{"127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11", "2001:db8::1", "2001:db8:1::2"} {
		local = append(local, netip.MustParseAddr(s))
	}
	return render.Options{
		RenderOptions: backend.RenderOptions{Node: "test-node", LocalAddresses: local},
		ServiceCIDRs:  []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd00:10:96::/112")},
	}
}

// hclCase is render's testdata/hcl/<name>.hcl, edited by the replacements
// old, new, … (each must apply).
func hclCase(t testing.TB, name string, edits ...string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("render", "testdata", "hcl", name+".hcl"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(src, edits[i]) {
			t.Fatalf("%s.hcl has no %q", name, edits[i])
		}
		src = strings.Replace(src, edits[i], edits[i+1], 1)
	}
	cfg, diags := config.Parse(map[string][]byte{name + ".hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

// desired renders cfg's family fam into knftables' Fake and returns its
// table in the model, as nft lists it.
func desired(t testing.TB, cfg *config.Config, fam backend.Family) *backend.Ruleset {
	t.Helper()
	return renderDesired(t, cfg, fam, renderOptions())
}

// renderDesired is desired with other render options.
func renderDesired(t testing.TB, cfg *config.Config, fam backend.Family, opts render.Options) *backend.Ruleset {
	t.Helper()
	kf := knftables.IPv4Family
	if fam == backend.IPv6 {
		kf = knftables.IPv6Family
	}
	fake := knftables.NewFake(kf, render.DefaultTable)
	tx := fake.NewTransaction()
	if _, err := render.RenderConfig(tx, cfg, fam, opts); err != nil {
		t.Fatal(err)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	rs, err := backend.ParseNFT(fam, strings.NewReader(fake.Dump()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range rs.Tables {
		for _, c := range tab.Chains {
			for i, r := range c.Rules {
				if r.Form == backend.NFTRule {
					c.Rules[i] = backend.NFTRuleOf(r.Chain, render.AsListed(r.Text()))
				}
			}
			if c.Kind != backend.KindChain {
				backend.SortElements(c.Rules)
			}
		}
	}
	return rs
}

// apply plans desired against what k holds and runs the transactions,
// staged in batches of batch; it returns the final transaction.
func apply(t testing.TB, k backend.Kernel, fam backend.Family, want *backend.Ruleset, batch int) *backend.Transaction {
	t.Helper()
	live, err := k.Read(fam, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := planner.New(testPrefix, Name, map[backend.Family]*backend.Ruleset{fam: want}, map[backend.Family]*backend.Ruleset{fam: live})
	stages, final := k.Transactions(fam, backend.NFTReferrers(live, p.Changes), batch)
	for _, tx := range append(stages, final) {
		k.Write(tx)
		if err := k.Run(tx); err != nil {
			t.Fatalf("%v\n%s", err, tx.Payload)
		}
	}
	return final
}

// empty is a family's ruleset holding an empty table: what destroy plans
// for, and reads back before RemoveTable.
func empty(fam backend.Family) *backend.Ruleset {
	return &backend.Ruleset{Family: fam, Syntax: backend.NFTables, Tables: []*backend.Table{{Name: "svcnat"}}}
}

// planChanges is the planner's changes from live to want, with Referrers.
func planChanges(want, live *backend.Ruleset) []backend.ChainChange {
	p := planner.New(testPrefix, Name, map[backend.Family]*backend.Ruleset{want.Family: want}, map[backend.Family]*backend.Ruleset{live.Family: live})
	return backend.NFTReferrers(live, p.Changes)
}
