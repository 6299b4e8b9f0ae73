package service

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
)

const node = "here"

// ep is an endpoint on node on ("" for none) with the conditions in
// conds: r ready, s serving, t terminating.
func ep(addr, on, conds string) *config.Endpoint {
	return &config.Endpoint{Address: netip.MustParseAddr(addr), Node: on,
		Ready: strings.Contains(conds, "r"), Serving: strings.Contains(conds, "s"), Terminating: strings.Contains(conds, "t")}
}

// svc is a service with one TCP port 80 and cluster IP 10.96.0.1, with
// the API's defaults, changed by mod.
func svc(name string, mod func(*config.Service), eps ...*config.Endpoint) *config.Service {
	s := &config.Service{Name: name, Type: config.TypeClusterIP, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1")},
		ExternalTrafficPolicy: config.PolicyCluster, InternalTrafficPolicy: config.PolicyCluster, SessionAffinity: config.AffinityNone,
		Ports: []*config.Port{{Protocol: config.ProtoTCP, Port: 80, TargetPort: 8080}}, Endpoints: eps}
	if mod != nil {
		mod(s)
	}
	return s
}

func only(t *testing.T, s *config.Service, opts Options) *Port {
	t.Helper()
	m := Build(&config.Config{Services: []*config.Service{s}}, opts)
	if len(m.Services) != 1 || len(m.Services[0].Ports) != 1 {
		t.Fatalf("model of one port: %+v", m.Services)
	}
	return m.Services[0].Ports[0]
}

func strs(eps []Endpoint) string {
	var out []string
	for _, e := range eps {
		out = append(out, e.String())
	}
	return strings.Join(out, " ")
}

var (
	nodePort = func(etp string) func(*config.Service) {
		return func(s *config.Service) {
			s.Type, s.ExternalTrafficPolicy, s.Ports[0].NodePort = config.TypeNodePort, etp, 30080
		}
	}
	internalLocal = func(s *config.Service) { s.InternalTrafficPolicy = config.PolicyLocal }
)

// TestCategorize holds the decisions of CategorizeEndpoints and of the
// top of kube-proxy's per-service loop, one case per path.
func TestCategorize(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		svc                       *config.Service
		cluster, local, reachable string
		internal, external        Outcome
		externalPath              bool
	}{
		{name: "ready ones only",
			svc:     svc("a", nil, ep("10.0.0.2", "", "rs"), ep("10.0.0.1", "", "st"), ep("10.0.0.3", "", "")),
			cluster: "10.0.0.2:8080", reachable: "10.0.0.2:8080"},
		{name: "none ready: serving and terminating",
			svc:     svc("a", nil, ep("10.0.0.1", "", "st"), ep("10.0.0.2", "", "s"), ep("10.0.0.3", "", "t"), ep("10.0.0.4", "", "st")),
			cluster: "10.0.0.1:8080 10.0.0.4:8080", reachable: "10.0.0.1:8080 10.0.0.4:8080"},
		{name: "no endpoints",
			svc:      svc("a", nodePort(config.PolicyCluster)),
			internal: Reject, external: Reject},
		{name: "none usable",
			svc:      svc("a", nodePort(config.PolicyCluster), ep("10.0.0.1", node, "s"), ep("10.0.0.2", "", "t")),
			internal: Reject, external: Reject},
		{name: "endpoints in ip:port string order",
			svc:     svc("a", nil, ep("10.0.0.10", "", "r"), ep("10.0.0.9", "", "r")),
			cluster: "10.0.0.10:8080 10.0.0.9:8080", reachable: "10.0.0.10:8080 10.0.0.9:8080"},
		{name: "internal Local",
			svc:   svc("a", internalLocal, ep("10.0.0.1", node, "r"), ep("10.0.0.2", "there", "r"), ep("10.0.0.3", node, "st")),
			local: "10.0.0.1:8080", reachable: "10.0.0.1:8080"},
		{name: "internal Local without local endpoints",
			svc:      svc("a", internalLocal, ep("10.0.0.2", "there", "r")),
			internal: Drop},
		{name: "internal Local falls back to local serving-terminating",
			svc:   svc("a", internalLocal, ep("10.0.0.1", node, "st"), ep("10.0.0.2", "there", "r")),
			local: "10.0.0.1:8080", reachable: "10.0.0.1:8080"},
		{name: "internal Local, externally accessible: cluster endpoints too",
			svc: svc("a", func(s *config.Service) { internalLocal(s); nodePort(config.PolicyCluster)(s) },
				ep("10.0.0.1", node, "st"), ep("10.0.0.2", "there", "r")),
			cluster: "10.0.0.2:8080", local: "10.0.0.1:8080", reachable: "10.0.0.1:8080 10.0.0.2:8080", externalPath: true},
		{name: "external Local",
			svc:     svc("a", nodePort(config.PolicyLocal), ep("10.0.0.1", node, "r"), ep("10.0.0.2", "there", "r")),
			cluster: "10.0.0.1:8080 10.0.0.2:8080", local: "10.0.0.1:8080", reachable: "10.0.0.1:8080 10.0.0.2:8080", externalPath: true},
		{name: "external Local without local endpoints",
			svc:     svc("a", nodePort(config.PolicyLocal), ep("10.0.0.2", "there", "r")),
			cluster: "10.0.0.2:8080", reachable: "10.0.0.2:8080", external: Drop, externalPath: true},
		{name: "external Local on a ClusterIP service does not apply",
			svc:     svc("a", func(s *config.Service) { s.ExternalTrafficPolicy = config.PolicyLocal }, ep("10.0.0.2", "there", "r")),
			cluster: "10.0.0.2:8080", reachable: "10.0.0.2:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := only(t, tc.svc, Options{Node: node})
			if got := strs(p.Cluster); got != tc.cluster {
				t.Errorf("Cluster %q, want %q", got, tc.cluster)
			}
			if got := strs(p.Local); got != tc.local {
				t.Errorf("Local %q, want %q", got, tc.local)
			}
			if got := strs(p.Reachable); got != tc.reachable {
				t.Errorf("Reachable %q, want %q", got, tc.reachable)
			}
			if p.Internal != tc.internal || p.External != tc.external {
				t.Errorf("internal %s, external %s; want %s, %s", p.Internal, p.External, tc.internal, tc.external)
			}
			if p.HasEndpoints != (tc.internal != Reject) || p.ExternalPath != tc.externalPath {
				t.Errorf("HasEndpoints %v, ExternalPath %v", p.HasEndpoints, p.ExternalPath)
			}
		})
	}
}

func TestLocal(t *testing.T) {
	s := svc("a", internalLocal, ep("10.0.0.1", node, "r"), ep("10.0.0.2", "", "r"), ep("10.0.0.3", "there", "r"))
	for _, tc := range []struct{ node, local string }{
		{node, "10.0.0.1:8080"},
		{"", ""}, // no node name: an endpoint without one is not local
	} {
		if got := strs(only(t, s, Options{Node: tc.node}).Local); got != tc.local {
			t.Errorf("node %q: Local %q, want %q", tc.node, got, tc.local)
		}
	}
	// One ip:port listed twice: the local one wins, as in kube-proxy's
	// EndpointSlice cache.
	dup := svc("a", internalLocal, ep("10.0.0.1", "there", "r"), ep("10.0.0.1", node, "r"), ep("10.0.0.1", "there", "r"))
	if p := only(t, dup, Options{Node: node}); len(p.Endpoints) != 1 || strs(p.Local) != "10.0.0.1:8080" {
		t.Errorf("duplicate: Endpoints %v, Local %q", p.Endpoints, strs(p.Local))
	}
}

func TestLocalReady(t *testing.T) {
	s := svc("a", func(s *config.Service) {
		s.ClusterIPs = append(s.ClusterIPs, netip.MustParseAddr("fd01::1"))
		s.Ports = append(s.Ports, &config.Port{Name: "b", Protocol: config.ProtoUDP, Port: 53, TargetPort: 53})
	}, ep("10.0.0.1", node, "r"), ep("fd00::1", node, "rs"), ep("10.0.0.2", node, "st"), ep("10.0.0.3", "there", "r"))
	m := Build(&config.Config{Services: []*config.Service{s}}, Options{Node: node})
	if got := m.Services[0].LocalReady; got != 2 {
		t.Errorf("LocalReady %d, want 2 (one per ready local address over two ports and families)", got)
	}
	if !m.IPv6 {
		t.Error("IPv6 false with an IPv6 cluster IP")
	}
	var order []string
	for _, p := range m.Services[0].Ports {
		order = append(order, p.ClusterIP.String()+"/"+p.Config.Name+"="+strs(p.Endpoints))
	}
	want := []string{"10.96.0.1/=10.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080", "10.96.0.1/b=10.0.0.1:53 10.0.0.2:53 10.0.0.3:53",
		"fd01::1/=[fd00::1]:8080", "fd01::1/b=[fd00::1]:53"}
	if !slices.Equal(order, want) {
		t.Errorf("ports and their endpoints\n%q\nwant\n%q", order, want)
	}
}

func TestLoadBalancer(t *testing.T) {
	lb := func(ranges ...string) func(*config.Service) {
		return func(s *config.Service) {
			s.Type, s.ExternalTrafficPolicy, s.HealthCheckNodePort = config.TypeLoadBalancer, config.PolicyLocal, 32000
			s.SessionAffinity = config.AffinityClientIP
			s.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")}
			for _, r := range ranges {
				s.LoadBalancerSourceRanges = append(s.LoadBalancerSourceRanges, netip.MustParsePrefix(r))
			}
		}
	}
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.7")}
	for _, tc := range []struct {
		name          string
		ranges        []string
		want          string
		firewalled    bool
		allowFromNode bool
	}{
		{"no ranges", nil, "", false, false},
		{"ranges masked, other family left out", []string{"198.51.100.1/24", "2001:db8::/32"}, "198.51.100.0/24", true, false},
		{"zero-length range allows all", []string{"198.51.100.0/24", "0.0.0.0/0"}, "", false, false},
		{"a range holds a node address", []string{"192.0.2.0/24"}, "192.0.2.0/24", true, true},
		{"loopback is no node address", []string{"127.0.0.0/8"}, "127.0.0.0/8", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := only(t, svc("a", lb(tc.ranges...), ep("10.0.0.1", "there", "r")), Options{Node: node, LocalAddresses: local})
			var got []string
			for _, r := range p.SourceRanges {
				got = append(got, r.String())
			}
			if strings.Join(got, " ") != tc.want || p.Firewalled != tc.firewalled || p.AllowFromNode != tc.allowFromNode {
				t.Errorf("ranges %q, Firewalled %v, AllowFromNode %v", got, p.Firewalled, p.AllowFromNode)
			}
			if len(p.LoadBalancerIPs) != 1 || !p.ExternallyAccessible || p.External != Drop {
				t.Errorf("LoadBalancerIPs %v, ExternallyAccessible %v, External %s", p.LoadBalancerIPs, p.ExternallyAccessible, p.External)
			}
			if p.Service.HealthCheckNodePort != 32000 || p.Service.AffinityTimeout != config.DefaultSessionAffinityTimeout {
				t.Errorf("HealthCheckNodePort %d, AffinityTimeout %d", p.Service.HealthCheckNodePort, p.Service.AffinityTimeout)
			}
		})
	}
	// Without endpoints nothing is filtered: there is nothing to reach.
	if p := only(t, svc("a", lb("198.51.100.0/24")), Options{}); p.Firewalled || p.ExternalPath {
		t.Errorf("no endpoints: Firewalled %v, ExternalPath %v", p.Firewalled, p.ExternalPath)
	}
	// A health-check node port needs type LoadBalancer and policy Local.
	np := svc("a", func(s *config.Service) { nodePort(config.PolicyLocal)(s); s.HealthCheckNodePort = 32000 })
	if p := only(t, np, Options{}); p.Service.HealthCheckNodePort != 0 || p.Service.AffinityTimeout != 0 {
		t.Errorf("NodePort: HealthCheckNodePort %d, AffinityTimeout %d", p.Service.HealthCheckNodePort, p.Service.AffinityTimeout)
	}
}

func TestOrder(t *testing.T) {
	headless := svc("c", func(s *config.Service) { s.ClusterIPs = nil })
	m := Build(&config.Config{Services: []*config.Service{svc("b", nil), headless, svc("a", nil)}}, Options{})
	var names []string
	for _, s := range m.Services {
		names = append(names, s.Config.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) || len(m.Services[2].Ports) != 0 || m.IPv6 {
		t.Errorf("services %q, headless ports %d, IPv6 %v", names, len(m.Services[2].Ports), m.IPv6)
	}
}
