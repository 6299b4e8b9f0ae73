package describe

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	iptdescribe "github.com/svcnat/svcnat/internal/kernel/iptables/describe"
	iptrender "github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/planner"
)

// base is the configuration every case changes: a Cluster-policy service
// with two endpoints and a node port, a load balancer with a source range,
// a Local-policy service, a UDP service, and one without endpoints.
const base = `
settings {
  node                = "node1"
  cluster_cidrs       = ["10.0.0.0/8"]
  node_port_range     = "1-65535"
}

service "ns/web" {
  type        = "NodePort"
  cluster_ips = ["172.30.0.1"]
  external_ips = ["192.168.99.1"]

  port {
    name      = "http"
    port      = 80
    target_port = 8080
    node_port = 30080
  }

  endpoint {
    address = "10.180.0.1"
  }

  endpoint {
    address = "10.180.0.2"
    node    = "node1"
  }
}

service "ns/lb" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.2"]
  load_balancer_ips           = ["5.6.7.8"]
  load_balancer_source_ranges = ["203.0.113.0/25"]

  port {
    name      = "https"
    port      = 443
    node_port = 30443
  }

  endpoint {
    address = "10.180.0.3"
  }
}

service "ns/local" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.3"]
  load_balancer_ips       = ["5.6.7.9"]
  external_traffic_policy = "Local"

  port {
    port      = 80
    node_port = 30081
  }

  endpoint {
    address = "10.180.0.4"
    node    = "node1"
  }
}

service "kube-system/dns" {
  cluster_ips = ["172.30.0.10"]

  port {
    name     = "dns"
    port     = 53
    protocol = "UDP"
  }

  endpoint {
    address = "10.180.0.5"
  }

  endpoint {
    address = "10.180.0.6"
  }
}

service "ns/empty" {
  cluster_ips = ["172.30.0.4"]

  port {
    port = 80
  }
}
`

// change is a configuration change: base, edited.
type change struct {
	name string
	edit func(string) string
}

func replace(pairs ...string) func(string) string {
	return func(s string) string {
		out := strings.NewReplacer(pairs...).Replace(s)
		if out == s {
			panic("edit changes nothing: " + pairs[0])
		}
		return out
	}
}

var changes = []change{
	{"endpoint added", replace(`  endpoint {
    address = "10.180.0.1"
  }
`, `  endpoint {
    address = "10.180.0.1"
  }

  endpoint {
    address = "10.180.0.9"
  }
`)},
	{"endpoint removed", replace(`  endpoint {
    address = "10.180.0.1"
  }
`, "")},
	{"node port changed", replace("node_port = 30080", "node_port = 30090")},
	{"cluster IP changed", replace(`"172.30.0.1"`, `"172.30.0.11"`)},
	{"external IP added", replace(`external_ips = ["192.168.99.1"]`, `external_ips = ["192.168.99.1", "192.168.99.2"]`)},
	{"source range added", replace(`["203.0.113.0/25"]`, `["203.0.113.0/25", "198.51.100.0/24"]`)},
	{"service added", func(s string) string {
		return s + `
service "ns/new" {
  cluster_ips = ["172.30.0.20"]

  port {
    port = 8080
  }

  endpoint {
    address = "10.180.0.20"
  }
}
`
	}},
	{"service removed", replace(`service "ns/empty" {
  cluster_ips = ["172.30.0.4"]

  port {
    port = 80
  }
}
`, "")},
	{"udp endpoint removed", replace(`  endpoint {
    address = "10.180.0.6"
  }
`, "")},
	{"endpoints gone", replace(`  endpoint {
    address = "10.180.0.5"
  }

  endpoint {
    address = "10.180.0.6"
  }
`, "")},
	{"endpoints come", replace(`service "ns/empty" {
  cluster_ips = ["172.30.0.4"]

  port {
    port = 80
  }
`, `service "ns/empty" {
  cluster_ips = ["172.30.0.4"]

  port {
    port = 80
  }

  endpoint {
    address = "10.180.0.30"
  }
`)},
	{"local endpoint gone", replace(`  endpoint {
    address = "10.180.0.4"
    node    = "node1"
  }
`, `  endpoint {
    address = "10.180.0.4"
    node    = "node2"
  }
`)},
	// The service chain's rule stays (two endpoints); only its range
	// of endpoints-tcp changes.
	{"endpoint replaced", replace(`address = "10.180.0.2"`, `address = "10.180.0.9"`)},
	// The same for UDP: the replaced endpoint's flows are stale.
	{"udp endpoint replaced", replace(`    address = "10.180.0.6"
  }
}`, `    address = "10.180.0.7"
  }
}`)},
	// Affinity rewrites the service chain's rules; its endpoints stay.
	{"affinity added", replace(`  type        = "NodePort"
  cluster_ips = ["172.30.0.1"]`, `  type        = "NodePort"
  cluster_ips = ["172.30.0.1"]
  session_affinity = "ClientIP"`)},
}

func load(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse(map[string][]byte{"svc.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatalf("config: %s", diags.Error())
	}
	return cfg
}

// planOf renders before and after with r and plans the change.
func planOf(t *testing.T, r backend.Renderer, name backend.Name, before, after *config.Config) *planner.Plan {
	t.Helper()
	opts := backend.RenderOptions{Node: "node1"}
	live, err := r.Render(before, opts)
	if err != nil {
		t.Fatal(err)
	}
	desired, err := r.Render(after, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := planner.New(after.Settings.ChainPrefix, name, desired.Rulesets, live.Rulesets)
	p.ChainService = desired.ChainService
	return p
}

// TestDescribeLikeIPTables: for each change of the configuration, the
// nftables plan reads, service by service, as the iptables plan of the
// same change does, except where the two layouts differ in meaning
// (known): there the nftables words are given.
func TestDescribeLikeIPTables(t *testing.T) {
	before := load(t, base)
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			after := load(t, c.edit(base))
			want := iptdescribe.Describer{}.Describe(planOf(t, iptrender.Renderer{}, "nft", before, after).Planned()).Services
			if k, ok := known[c.name]; ok {
				want = k
			}
			p := planOf(t, render.Renderer{}, "nftables", before, after)
			d := Describer{}.Describe(p.Planned())
			if got := words(d.Services); got != words(want) {
				t.Errorf("nftables:\n%s\niptables:\n%s", got, words(want))
			}
			if len(d.Chains) != len(p.Changes) {
				t.Fatalf("%d owners for %d changes", len(d.Chains), len(p.Changes))
			}
		})
	}
}

// known are the changes the two backends say differently, and what the
// nftables describer says.
var known = map[string][]backend.ServiceChange{
	// iptables also names the SVC chain, whose masquerade rule matches
	// the cluster IP; nftables masquerades by the cluster-ips set and its
	// service chain does not change.
	"cluster IP changed": {{Name: "ns/web", Action: backend.Update, Details: []backend.Detail{
		{Subject: backend.SubjectClusterIP, Value: "172.30.0.1:80/tcp", Change: backend.DetailRemoved},
		{Subject: backend.SubjectClusterIP, Value: "172.30.0.11:80/tcp", Change: backend.DetailAdded}}}},
	// iptables sees a rule added to the FW chain (its "loadbalancer IP"
	// comment is read as the chain's); the firewall chain's one rule is
	// the source ranges.
	"source range added": {{Name: "ns/lb", Action: backend.Update, Details: []backend.Detail{
		{Subject: backend.SubjectSourceRanges, Change: backend.DetailChanged}}}},
	// iptables rewrites the SVC chain and each SEP chain (its recent
	// match); nftables adds the affinity rules before the service
	// chain's one rule, which stays, as its fallback (the affinity set is
	// shared).
	"affinity added": {{Name: "ns/web", Action: backend.Update, Details: []backend.Detail{
		{Subject: backend.SubjectChain, Value: "SVC", Change: backend.DetailAdded}}}},
}

// words prints services as the views would list them, details sorted:
// the two backends find them in different orders.
func words(svcs []backend.ServiceChange) string {
	var b strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&b, "%c %s\n", s.Action, s.Name)
		ds := slices.Clone(s.Details)
		slices.SortFunc(ds, func(a, b backend.Detail) int {
			return cmp.Or(cmp.Compare(a.Subject, b.Subject), strings.Compare(a.Value, b.Value))
		})
		for _, d := range ds {
			fmt.Fprintf(&b, "    %d %q %d\n", d.Subject, d.Value, d.Change)
		}
	}
	return b.String()
}
