package describe

import (
	"slices"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	iptdescribe "github.com/svcnat/svcnat/internal/kernel/iptables/describe"
	iptrender "github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// TestStaleUDPLikeIPTables: every change lists the flows the iptables
// describer lists for it, and the UDP endpoint's removal some.
func TestStaleUDPLikeIPTables(t *testing.T) {
	before := load(t, base)
	some := false
	for _, c := range changes {
		after := load(t, c.edit(base))
		want := iptdescribe.Describer{}.StaleUDP(planOf(t, iptrender.Renderer{}, "nft", before, after).Planned())
		p := planOf(t, render.Renderer{}, "nftables", before, after)
		got := Describer{}.StaleUDP(p.Planned())
		if !slices.Equal(got, want) {
			t.Errorf("%s: flows %+v, iptables %+v", c.name, got, want)
		}
		some = some || len(got) > 0
		// A saved plan's (no ChainService) reads the same.
		p.ChainService = nil
		if again := (Describer{}).StaleUDP(p.Planned()); !slices.Equal(again, got) {
			t.Errorf("%s: without the renderer's index %+v", c.name, again)
		}
	}
	if !some {
		t.Fatal("no case leaves a stale flow")
	}
}

// TestInventoryLikeIPTables: the live table's rules and elements fall to
// the services the iptables inventory names, the fixed ones shared.
func TestInventoryLikeIPTables(t *testing.T) {
	cfg := load(t, base)
	ipt, err := iptrender.Renderer{}.Render(cfg, backend.RenderOptions{Node: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	nft, err := render.Renderer{}.Render(cfg, backend.RenderOptions{Node: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	want := iptdescribe.Describer{}.Inventory(cfg.Settings.ChainPrefix, ipt.Rulesets)
	got := Describer{}.Inventory(cfg.Settings.ChainPrefix, nft.Rulesets)
	if !slices.Equal(got.Names(), want.Names()) {
		t.Fatalf("services %v, iptables %v", got.Names(), want.Names())
	}
	rs := nft.Rulesets[backend.IPv4]
	if got.Chains != len(rs.Tables[0].Chains) || got.Rules != rs.RuleCount() {
		t.Errorf("counts %d objects %d lines, want %d and %d", got.Chains, got.Rules, len(rs.Tables[0].Chains), rs.RuleCount())
	}
	n := len(got.Shared)
	for _, ls := range got.Services {
		n += len(ls)
	}
	if n != got.Rules {
		t.Errorf("%d lines placed of %d", n, got.Rules)
	}
	// A service without endpoints has only its cluster IP and its reject.
	if len(got.Services["ns/empty"]) != 2 {
		t.Errorf("ns/empty holds %v", got.Services["ns/empty"])
	}
	for _, l := range got.Services["ns/empty"] {
		if l.Rule.Chain != noEndpointSvcs && l.Rule.Chain != clusterIPs {
			t.Errorf("ns/empty holds %s", l.Rule)
		}
	}
}

// TestChainOwners: per-service objects are their service's, shared maps
// shared even when one service's elements change, and a saved plan's
// changes (no ChainService) are attributed alike.
func TestChainOwners(t *testing.T) {
	before := load(t, base)
	after := load(t, changes[2].edit(base)) // node port changed
	p := planOf(t, render.Renderer{}, "nftables", before, after)
	d := Describer{}.Describe(p.Planned())
	if len(p.Changes) != 1 || p.Changes[0].Chain != serviceNodePort || d.Chains[0].Scope != backend.ScopeShared {
		t.Fatalf("changes %+v owners %+v", p.Changes, d.Chains)
	}
	after = load(t, changes[0].edit(base)) // endpoint added
	p = planOf(t, render.Renderer{}, "nftables", before, after)
	withIndex := Describer{}.Describe(p.Planned())
	p.ChainService = nil
	without := Describer{}.Describe(p.Planned())
	// The service chain (its numgen count) is ns/web's; the endpoints
	// map, where the endpoint is added in ns/web's range, is shared.
	want := map[string]backend.ChainOwner{
		"service-Y6QD5CCT-ns/web/tcp/http": {Service: "ns/web", Scope: backend.ScopeService},
		"endpoints-tcp-0":                  {Scope: backend.ScopeShared},
	}
	ok := len(withIndex.Chains) == len(want) && len(p.Changes) == len(want)
	for i, c := range p.Changes {
		ok = ok && withIndex.Chains[i] == want[c.Chain]
	}
	if !ok || !slices.Equal(withIndex.Chains, without.Chains) || words(withIndex.Services) != words(without.Services) {
		t.Fatalf("changes %v: owners %+v and without the renderer's index %+v", p.Changes, withIndex.Chains, without.Chains)
	}
}
