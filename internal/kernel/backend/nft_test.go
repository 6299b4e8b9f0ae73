package backend

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const nftText = `add table ip svcnat
add chain ip svcnat nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip svcnat service-X-ns/web/tcp/http
add chain ip svcnat services
add set ip svcnat cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add map ip svcnat service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add rule ip svcnat nat-prerouting jump services
add rule ip svcnat service-X-ns/web/tcp/http meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.1.0.1 . 80 }
add rule ip svcnat services ip daddr . meta l4proto . th dport vmap @service-ips
add element ip svcnat cluster-ips { 10.32.0.1 }
add element ip svcnat service-ips { 10.32.0.1 . tcp . 80 : goto service-X-ns/web/tcp/http }
`

// TestNFTTextRoundTrip reads the nftables text form and prints it back
// byte for byte, whatever order the objects were in.
func TestNFTTextRoundTrip(t *testing.T) {
	rs, err := ParseNFT(IPv4, strings.NewReader(nftText))
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Text(); got != nftText {
		t.Fatalf("text form changed:\n%s\nwant:\n%s", got, nftText)
	}
	// Another order of declaration reads as the same ruleset.
	tab := rs.Tables[0]
	slices.Reverse(tab.Chains)
	if got := rs.Text(); got != nftText {
		t.Fatalf("text form depends on the objects' order:\n%s", got)
	}
	m := tab.Chain("service-ips")
	if m.Kind != KindMap || m.Policy != "type ipv4_addr . inet_proto . inet_service : verdict ;" {
		t.Errorf("service-ips: kind %v declaration %q", m.Kind, m.Policy)
	}
	if got := m.Rules[0].String(); got != "element service-ips { 10.32.0.1 . tcp . 80 : goto service-X-ns/web/tcp/http }" {
		t.Errorf("element prints as %q", got)
	}
	if got := tab.Chain("nat-prerouting").Rules[0]; got.String() != "rule nat-prerouting jump services" || got.Target() != "services" {
		t.Errorf("rule prints as %q, target %q", got, got.Target())
	}
	if got := m.Rules[0].Target(); got != "service-X-ns/web/tcp/http" {
		t.Errorf("element's target %q", got)
	}
	if got := NFTLine(IPv4, "svcnat", m.Rules[0]); got != "add element ip svcnat service-ips { 10.32.0.1 . tcp . 80 : goto service-X-ns/web/tcp/http }" {
		t.Errorf("NFTLine: %q", got)
	}
	chains, n := ScanText([]byte(nftText))
	if len(chains) != 5 || n != 5 {
		t.Errorf("ScanText: %d objects, %d lines; want 5 and 5", len(chains), n)
	}
}

func TestNFTOwned(t *testing.T) {
	rs, err := ParseNFT(IPv4, strings.NewReader(nftText+"add table ip other\nadd chain ip other x\n"))
	if err != nil {
		t.Fatal(err)
	}
	own := rs.Owned("SVCNAT")
	if len(own.Tables) != 1 || own.Tables[0].Name != "svcnat" || own.Syntax != NFTables {
		t.Fatalf("owned: %+v", own)
	}
	if f := rs.Foreign("SVCNAT"); len(f.Tables) != 1 || f.Tables[0].Name != "other" {
		t.Fatalf("foreign: %+v", f.Tables)
	}
	if !rs.Owns("SVCNAT", "svcnat", "anything") || rs.Owns("SVCNAT", "other", "x") {
		t.Error("Owns does not follow the table")
	}
}

func TestNFTParseErrors(t *testing.T) {
	for _, in := range []string{
		"add rule ip svcnat nochain accept\n",
		"add table ip6 svcnat\n",
		"add chain ip svcnat x\nadd element ip svcnat x { 1 }\n",
		"flush ruleset\n",
		"add set ip svcnat s type ipv4_addr\n",
	} {
		if _, err := ParseNFT(IPv4, strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%q: error %v, want one naming the line", in, err)
		}
	}
}

func TestNFTComment(t *testing.T) {
	r := NFTRuleOf("c", `fib saddr type local goto service-X comment "short-circuit local traffic"`)
	if r.Comment() != "short-circuit local traffic" || r.Target() != "service-X" {
		t.Errorf("comment %q target %q", r.Comment(), r.Target())
	}
}

// TestOldNames: state and plans recorded before the nftables backend name
// the iptables backends "nft" and "legacy"; they read as today's names,
// and digests keep spelling them the old way.
func TestOldNames(t *testing.T) {
	var st struct{ Backend Name }
	if err := json.Unmarshal([]byte(`{"Backend":"nft"}`), &st); err != nil || st.Backend != "iptables-nft" {
		t.Errorf("recorded nft reads as %q (%v)", st.Backend, err)
	}
	for old, now := range map[Name]Name{"nft": "iptables-nft", "legacy": "iptables-legacy", "nftables": "nftables"} {
		if old.Canonical() != now {
			t.Errorf("%s: canonical %s, want %s", old, old.Canonical(), now)
		}
	}
	if Name("iptables-legacy").Digested() != "legacy" || Name("nftables").Digested() != "nftables" {
		t.Error("digests do not spell the old names")
	}
}
