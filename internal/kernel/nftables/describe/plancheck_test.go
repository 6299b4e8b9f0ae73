package describe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// TestCheckDesiredAdmitsWhatRenderWrites: the check must never refuse
// what svcnat itself writes: every golden of the renderer, IPv4 and IPv6,
// and every configuration of this package's cases.
func TestCheckDesiredAdmitsWhatRenderWrites(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("..", "render", "testdata", "*.nft"))
	if err != nil || len(goldens) < 5 {
		t.Fatalf("goldens: %v, %d", err, len(goldens))
	}
	for _, g := range goldens {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		fam := backend.IPv4
		if strings.HasSuffix(g, ".v6.nft") {
			fam = backend.IPv6
		}
		rs, err := render.ToModel(fam, string(data))
		if err != nil {
			t.Fatal(err)
		}
		if err := (Describer{}).CheckDesired("SVCNAT", map[backend.Family]*backend.Ruleset{fam: rs}); err != nil {
			t.Errorf("%s: %v", filepath.Base(g), err)
		}
	}
	for _, c := range append(changes, change{"base", func(s string) string { return s }}) {
		cfg := load(t, c.edit(base))
		out, err := render.Renderer{}.Render(cfg, backend.RenderOptions{Node: "node1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := (Describer{}).CheckDesired(cfg.Settings.ChainPrefix, out.Rulesets); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestCheckDesiredRefusesHandEdits: a line or object svcnat could not
// have written is refused, by an error naming it.
func TestCheckDesiredRefusesHandEdits(t *testing.T) {
	cfg := load(t, base)
	out, err := render.Renderer{}.Render(cfg, backend.RenderOptions{Node: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	text := out.Rulesets[backend.IPv4].Text()
	const web = "service-Y6QD5CCT-ns/web/tcp/http"
	for _, tc := range []struct{ name, old, new, names string }{
		{"another table", "add table ip svcnat\n", "add table ip svcnat\nadd table ip filter\nadd chain ip filter input { type filter hook input priority 0 ; }\n", "table filter"},
		{"foreign chain", "add chain ip svcnat services\n", "add chain ip svcnat services\nadd chain ip svcnat backdoor\n", "chain backdoor"},
		{"fixed chain redeclared as a base chain", "add chain ip svcnat services\n", "add chain ip svcnat services { type filter hook input priority 0 ; }\n", "chain services"},
		{"map as a set", "add map ip svcnat service-ips {", "add set ip svcnat service-ips {", "set service-ips"},
		{"bad hash", "add chain ip svcnat " + web + "\n", "add chain ip svcnat " + web + "\nadd chain ip svcnat service-lowercas-ns/x/tcp/\n", "service-lowercas"},
		{"accept in a service chain", "add rule ip svcnat " + web + " ", "add rule ip svcnat " + web + " accept\nadd rule ip svcnat " + web + " ", `"add rule ip svcnat ` + web + ` accept"`},
		{"dnat to the host", "3539992576 : 10.180.0.1 . 8080", "3539992576 : 127.0.0.1 . 22", "127.0.0.1"},
		{"dnat to a set", "dnat ip to numgen random mod 2 offset 3539992576 map", "dnat ip to ip daddr map", "dnat ip to ip daddr"},
		{"range past 32 bits", "numgen random mod 2 offset 3539992576 map", "numgen random mod 2 offset 4294967295 map", "4294967295 is outside"},
		{"another protocol's map", "offset 3539992576 map @endpoints-tcp-0", "offset 3539992576 map @endpoints-udp-0", "picks from an endpoints map of tcp"},
		{"another shard", "offset 3539992576 map @endpoints-tcp-0", "offset 3539992576 map @endpoints-tcp-5", "is in endpoints-tcp-0, not endpoints-tcp-5"},
		{"endpoint chain", "add chain ip svcnat " + web + "\n", "add chain ip svcnat " + web + "\nadd chain ip svcnat endpoint-AAAAAAAA-ns/web/tcp/http__10.180.0.1/8080\n", "no endpoint chains"},
		{"affinity element", "add element ip svcnat endpoints-tcp-0 { 3539992576 : 10.180.0.1 . 8080 }", "add element ip svcnat endpoints-tcp-0 { 3539992576 : 10.180.0.1 . 8080 }\nadd element ip svcnat affinity { 1 . 10.0.0.1 }", "nothing in affinity"},
		{"another mark", "masquerade clusterIP traffic from outside cluster", "x", "masquerade clusterIP"},
		{"mark of two bits", "meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000", "meta mark & 0x00006000 != 0x00000000 meta mark set meta mark ^ 0x00006000", "0x00006000"},
		{"jump to a foreign chain", "add rule ip svcnat nat-output jump services", "add rule ip svcnat nat-output jump masquerading", "nat-output jump masquerading"},
		{"dispatch to a fixed chain", "172.30.0.1 . tcp . 80 : goto " + web, "172.30.0.1 . tcp . 80 : goto reject-chain", "goto reject-chain"},
		{"dispatch to a missing chain", "172.30.0.1 . tcp . 80 : goto " + web, "172.30.0.1 . tcp . 80 : goto service-AAAAAAAA-ns/x/tcp/", "not in the plan"},
		{"element accepts", "172.30.0.1 . tcp . 80 : goto " + web, "172.30.0.1 . tcp . 80 : accept", "accept"},
		{"rule in a map", "add element ip svcnat cluster-ips { 172.30.0.1 }", "add element ip svcnat cluster-ips { 172.30.0.1 }\nadd rule ip svcnat cluster-ips-check ip daddr 172.30.0.1 accept", "accept"},
		{"IPv6 address in IPv4", "add element ip svcnat cluster-ips { 172.30.0.1 }", "add element ip svcnat cluster-ips { ::1 }", "::1"},
		{"quote in a comment", `comment "ns/empty"`, `comment "ns/empty\" ; flush ruleset"`, "no-endpoint-services"},
		{"source range rule with accept", "ip saddr != 203.0.113.0/25 drop", "ip saddr != 203.0.113.0/25 accept", "accept"},
		// kube-system/dns is chainless: dispatch-udp-2, vip-endpoints-udp.
		{"dispatch chain of another count", "dispatch-udp-2 dnat ip to ip daddr . udp dport . numgen random mod 2 map", "dispatch-udp-2 dnat ip to ip daddr . udp dport . numgen random mod 3 map", "picks one of 2 udp endpoints"},
		{"dispatch chain of another protocol's map", "numgen random mod 2 map @vip-endpoints-udp", "numgen random mod 2 map @vip-endpoints-tcp", "vip-endpoints-udp"},
		{"dispatch chain with another rule", "add rule ip svcnat dispatch-udp-2 ", "add rule ip svcnat dispatch-udp-2 accept\nadd rule ip svcnat dispatch-udp-2 ", "dispatch-udp-2 accept"},
		{"dispatch to another protocol's chain", `comment "kube-system/dns:dns" : goto dispatch-udp-2`, `comment "kube-system/dns:dns" : goto dispatch-tcp-2`, "dispatch chain of udp"},
		{"dispatch chain misnamed", "add chain ip svcnat dispatch-udp-2\n", "add chain ip svcnat dispatch-udp-2\nadd chain ip svcnat dispatch-udp-02\n", "dispatch-udp-02"},
		{"vip endpoint to the host", "172.30.0.10 . 53 . 0 : 10.180.0.5 . 53", "172.30.0.10 . 53 . 0 : 127.0.0.1 . 53", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := strings.Replace(text, tc.old, tc.new, 1)
			if edited == text && tc.name != "another mark" {
				t.Fatalf("edit changes nothing")
			}
			if tc.name == "another mark" {
				edited = strings.Replace(text, "ip saddr != 10.0.0.0/8 meta mark set meta mark | 0x00004000", "ip saddr != 10.0.0.0/8 meta mark set meta mark | 0x00008000", 1)
			}
			rs, err := render.Renderer{}.Parse(backend.IPv4, strings.NewReader(edited))
			if err != nil {
				t.Fatal(err)
			}
			err = Describer{}.CheckDesired("SVCNAT", map[backend.Family]*backend.Ruleset{backend.IPv4: rs})
			var de *DesiredObjectError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("error %v, want one naming %q", err, tc.names)
			}
		})
	}
	// An iptables ruleset is no nftables plan's.
	err = Describer{}.CheckDesired("SVCNAT", map[backend.Family]*backend.Ruleset{backend.IPv4: {Family: backend.IPv4, Tables: []*backend.Table{{Name: "nat"}}}})
	if err == nil {
		t.Fatal("an iptables ruleset passes")
	}
}
