package trace

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
)

// randomConfig writes a valid configuration of a few services with random
// types, policies, affinity and endpoints on two nodes.
func randomConfig(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString("settings {\n  node = \"node1\"\n  cluster_cidrs = [\"10.64.0.0/14\"]\n}\n")
	nodePort := 30000
	for i := range 1 + r.IntN(6) {
		typ := []string{"ClusterIP", "NodePort", "LoadBalancer"}[r.IntN(3)]
		fmt.Fprintf(&b, "service \"ns/s%d\" {\n  type = %q\n  cluster_ips = [\"10.32.%d.%d\"]\n", i, typ, i, 1+r.IntN(200))
		if typ != "ClusterIP" && r.IntN(2) == 0 {
			b.WriteString("  external_traffic_policy = \"Local\"\n")
		}
		if typ == "LoadBalancer" {
			fmt.Fprintf(&b, "  load_balancer_ips = [\"198.18.%d.1\"]\n", i)
			if r.IntN(2) == 0 {
				b.WriteString("  load_balancer_source_ranges = [\"203.0.113.0/25\"]\n")
			}
		}
		if r.IntN(3) == 0 {
			b.WriteString("  session_affinity = \"ClientIP\"\n")
		}
		proto := []string{"TCP", "UDP"}[r.IntN(2)]
		fmt.Fprintf(&b, "  port {\n    protocol = %q\n    port = %d\n", proto, 80+r.IntN(20))
		if typ != "ClusterIP" {
			nodePort += 1 + r.IntN(50)
			fmt.Fprintf(&b, "    node_port = %d\n", nodePort)
		}
		b.WriteString("  }\n")
		for e := range r.IntN(5) {
			fmt.Fprintf(&b, "  endpoint {\n    address = \"10.64.%d.%d\"\n    node = \"node%d\"\n", i, e+2, 1+r.IntN(2))
			if r.IntN(5) == 0 {
				b.WriteString("    ready = false\n")
			}
			b.WriteString("  }\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// For random valid configurations, every packet trace says is DNATed goes
// to an endpoint of the service it addressed, the probabilities of the
// unconditional paths sum to 1, and every rule is evaluated (check).
func TestRandomConfigurations(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	local := []netip.Addr{netip.MustParseAddr("192.168.0.2")}
	for n := range 200 {
		src := randomConfig(r)
		cfg, diags := config.Parse(map[string][]byte{"random.hcl": []byte(src)})
		if diags.HasErrors() {
			t.Fatalf("configuration %d is not valid: %v\n%s", n, diags, src)
		}
		res, err := render.Render(cfg, render.Options{Node: "node1", LocalAddresses: local, RandomFully: true})
		if err != nil {
			t.Fatal(err)
		}
		h := Host{Rules: res.Rulesets, Local: local}
		for _, p := range frontends(cfg) {
			tr, err := h.Trace(p)
			if err != nil {
				t.Fatal(err)
			}
			check(t, cfg, tr)
			if t.Failed() {
				t.Fatalf("configuration %d:\n%s", n, src)
			}
		}
	}
}
