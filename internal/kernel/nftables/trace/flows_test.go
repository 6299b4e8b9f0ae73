package trace

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/service"
)

// The packet-flow expectations of kube-proxy's nftables proxier tests
// (pkg/proxy/nftables/proxier_test.go, runPacketFlowTests), each
// configuration written in svcnat's HCL and rendered with the settings of
// its NewFakeProxier: node "test-node" with testNodeIPs, pod CIDR
// 10.0.0.0/8 (fd00:10::/64), node port addresses 192.168.0.2/32 and
// 2001:db8::1/128 (nftables mode's primary node IPs), service CIDRs
// 172.30.0.0/16 and fd00:10:96::/112. kube-proxy's own tracer runs every
// packet through prerouting; here a packet from one of the node's
// addresses is traced as the host sends it (output), as the kernel sees
// it.

// flow is one packetFlowTest: output is the endpoints reached ("a:p, b:p"
// in address order, every numgen branch), "DROP", "REJECT", or "" (no
// NAT, delivered or forwarded as it is); masq whether every path is
// masqueraded.
type flow struct {
	name     string
	src, dst string
	port     int
	proto    string
	output   string
	masq     bool
}

const fakeSettings = `
settings {
  node                = "test-node"
  cluster_cidrs       = ["10.0.0.0/8", "fd00:10::/64"]
  node_port_range     = "1-65535"
  node_port_addresses = ["192.168.0.2/32", "2001:db8::1/128"]
}
`

// upstreamHost renders an HCL configuration for NewFakeProxier's node.
func upstreamHost(t *testing.T, src string) Host {
	t.Helper()
	cfg, diags := config.Parse(map[string][]byte{"flows.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatalf("%v\n%s", diags, src)
	}
	return upstreamHostOf(t, cfg)
}

func upstreamHostOf(t *testing.T, cfg *config.Config) Host {
	t.Helper()
	local := addrs(upstreamLocal...)
	table := backend.NFTTable(cfg.Settings.ChainPrefix)
	opts := render.Options{RenderOptions: backend.RenderOptions{Node: "test-node", LocalAddresses: local}, Table: table,
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd00:10:96::/112")}}
	m := service.Build(cfg, service.Options{Node: opts.Node, LocalAddresses: local})
	h := Host{Rules: map[backend.Family]*backend.Ruleset{}, Local: local, Table: table}
	for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
		rs, _, err := render.RenderModel(m, &cfg.Settings, fam, opts)
		if err != nil {
			t.Fatal(err)
		}
		h.Rules[fam] = rs
	}
	return h
}

// runFlows traces each flow and compares what it reaches with kube-proxy's
// expectation.
func runFlows(t *testing.T, h Host, flows []flow) {
	t.Helper()
	for _, f := range flows {
		proto := f.proto
		if proto == "" {
			proto = "tcp"
		}
		p := backend.Packet{Src: netip.MustParseAddr(f.src), Dst: netip.MustParseAddr(f.dst), Proto: proto, DPort: f.port, Origin: backend.OriginExternal}
		if backend.HostAddresses(h.Local).IsLocal(p.Src) {
			p.Origin = backend.OriginLocal
		}
		res, err := h.Trace(p)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		output, masq, problem := reached(res)
		if problem != "" {
			t.Errorf("%s (%s): %s\n%s", f.name, p, problem, text(res))
			continue
		}
		if output != f.output || output != "DROP" && output != "REJECT" && output != "" && masq != f.masq {
			t.Errorf("%s (%s): reaches %q masquerade %v, want %q masquerade %v\n%s", f.name, p, output, masq, f.output, f.masq, text(res))
		}
	}
}

// reached is what kube-proxy's tracer would report for res: the endpoints
// of the unconditional paths, or their one verdict; a path left
// unevaluated, or paths that disagree on masquerading, are errors.
func reached(res *backend.Result) (output string, masq bool, problem string) {
	seen := map[string]bool{}
	var eps []netip.AddrPort
	var verdicts []string
	masqs := map[bool]bool{}
	for _, p := range res.Paths {
		if len(p.Unknown) > 0 || p.Cut != nil {
			return "", false, "not evaluated: " + strings.Join(p.Unknown, "; ")
		}
		if p.Condition != "" {
			continue
		}
		switch p.Verdict {
		case backend.DNAT:
			if !seen[p.Dst.String()] {
				seen[p.Dst.String()] = true
				eps = append(eps, p.Dst)
			}
			masqs[p.Masquerade != ""] = true
		case backend.Drop, backend.Reject:
			verdicts = append(verdicts, string(p.Verdict))
		default:
			verdicts = append(verdicts, "")
		}
	}
	if len(eps) > 0 && len(verdicts) > 0 || len(masqs) > 1 {
		return "", false, "paths disagree"
	}
	if len(eps) == 0 {
		if len(verdicts) != 1 {
			return "", false, "paths disagree"
		}
		return verdicts[0], false, ""
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Compare(eps[j]) < 0 })
	var parts []string
	for _, e := range eps {
		parts = append(parts, e.String())
	}
	return strings.Join(parts, ", "), masqs[true], ""
}

const (
	client        = "203.0.113.2"   // testExternalClient
	clientBlocked = "203.0.113.130" // testExternalClientBlocked
	nodeIP        = "192.168.0.2"
	pod           = "10.0.0.2"
)

// TestOverallNFTablesRules: the six services of kube-proxy's
// TestOverallNFTablesRules (render's overall.hcl), traced from a pod, an
// outside client and the node. Upstream compares that test's dump only;
// these flows are what its rules say, each checked in the dump: pods
// reach cluster IPs unmasqueraded, outsiders masqueraded (the services
// rule), Local policy without local endpoints drops outsiders
// (no-endpoint-services, no-endpoint-nodeports) but short-circuits pods
// and the node, the source range drops outsiders to the load-balancer IP
// but not to its node port, a service without endpoints and a cluster
// IP's other ports are rejected, and an unallocated address of the
// service CIDR is dropped.
func TestOverallNFTablesRules(t *testing.T) {
	cfg, diags := config.Load("../render/testdata/hcl/overall.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	runFlows(t, upstreamHostOf(t, cfg), []flow{
		{name: "pod to svc1 cluster IP", src: pod, dst: "172.30.0.41", port: 80, output: "10.180.0.1:80"},
		{name: "external to svc1 cluster IP", src: client, dst: "172.30.0.41", port: 80, output: "10.180.0.1:80", masq: true},
		{name: "node to svc1 cluster IP", src: nodeIP, dst: "172.30.0.41", port: 80, output: "10.180.0.1:80", masq: true},
		{name: "svc1 does not accept other ports", src: pod, dst: "172.30.0.41", port: 443, output: "REJECT"},
		{name: "svc1 does not accept UDP", src: pod, dst: "172.30.0.41", port: 80, proto: "udp", output: "REJECT"},
		{name: "pod to svc2 cluster IP", src: pod, dst: "172.30.0.42", port: 80, output: "10.180.0.2:80"},
		{name: "external to svc2 external IP (Local, no local endpoints)", src: client, dst: "192.168.99.22", port: 80, output: "DROP"},
		{name: "external to svc2 LB IP (Local, no local endpoints)", src: client, dst: "1.2.3.4", port: 80, output: "DROP"},
		{name: "external to svc2 node port (Local, no local endpoints)", src: client, dst: nodeIP, port: 3001, output: "DROP"},
		{name: "pod to svc2 LB IP short-circuits", src: pod, dst: "1.2.3.4", port: 80, output: "10.180.0.2:80"},
		{name: "pod to svc2 external IP short-circuits", src: pod, dst: "192.168.99.22", port: 80, output: "10.180.0.2:80"},
		{name: "node to svc2 node port short-circuits", src: nodeIP, dst: nodeIP, port: 3001, output: "10.180.0.2:80", masq: true},
		{name: "node to svc2 LB IP short-circuits", src: nodeIP, dst: "1.2.3.4", port: 80, output: "10.180.0.2:80", masq: true},
		{name: "external to svc3 node port", src: client, dst: nodeIP, port: 3003, output: "10.180.0.3:80", masq: true},
		{name: "pod to svc3 node port", src: pod, dst: nodeIP, port: 3003, output: "10.180.0.3:80", masq: true},
		{name: "svc3's node port only on node port addresses", src: client, dst: "192.168.1.2", port: 3003, output: ""},
		{name: "pod to svc4 cluster IP", src: pod, dst: "172.30.0.44", port: 80, output: "10.180.0.4:80, 10.180.0.5:80"},
		{name: "external to svc4 external IP", src: client, dst: "192.168.99.33", port: 80, output: "10.180.0.4:80, 10.180.0.5:80", masq: true},
		{name: "pod to svc5 cluster IP", src: pod, dst: "172.30.0.45", port: 80, output: "10.180.0.3:80"},
		{name: "external to svc5 LB IP in the source range", src: client, dst: "5.6.7.8", port: 80, output: "10.180.0.3:80", masq: true},
		{name: "external to svc5 LB IP outside the source range", src: clientBlocked, dst: "5.6.7.8", port: 80, output: "DROP"},
		{name: "svc5's node port bypasses the source range", src: clientBlocked, dst: nodeIP, port: 3002, output: "10.180.0.3:80", masq: true},
		{name: "pod to svc6 without endpoints", src: pod, dst: "172.30.0.46", port: 80, output: "REJECT"},
		{name: "node to svc6 without endpoints", src: nodeIP, dst: "172.30.0.46", port: 80, output: "REJECT"},
		{name: "unallocated cluster IP", src: pod, dst: "172.30.0.50", port: 80, output: "DROP"},
		{name: "not a service", src: client, dst: "10.180.0.1", port: 80, output: ""},
	})
}

// TestNoEndpointsReject is kube-proxy's: every frontend of a service
// without endpoints rejects.
func TestNoEndpointsReject(t *testing.T) {
	h := upstreamHost(t, fakeSettings+`
service "ns1/svc1" {
  type              = "LoadBalancer"
  cluster_ips       = ["172.30.0.41"]
  external_ips      = ["192.168.99.11"]
  load_balancer_ips = ["1.2.3.4"]
  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }
}`)
	runFlows(t, h, []flow{
		{name: "pod to cluster IP with no endpoints", src: pod, dst: "172.30.0.41", port: 80, output: "REJECT"},
		{name: "external to external IP with no endpoints", src: client, dst: "192.168.99.11", port: 80, output: "REJECT"},
		{name: "pod to NodePort with no endpoints", src: pod, dst: nodeIP, port: 3001, output: "REJECT"},
		{name: "external to NodePort with no endpoints", src: client, dst: nodeIP, port: 3001, output: "REJECT"},
		{name: "pod to LoadBalancer IP with no endpoints", src: pod, dst: "1.2.3.4", port: 80, output: "REJECT"},
		{name: "external to LoadBalancer IP with no endpoints", src: client, dst: "1.2.3.4", port: 80, output: "REJECT"},
	})
}

func TestClusterIPGeneral(t *testing.T) {
	h := upstreamHost(t, fakeSettings+`
service "ns1/svc1" {
  cluster_ips = ["172.30.0.41"]
  port {
    name = "http"
    port = 80
  }
  endpoint {
    address = "10.180.0.1"
    node    = "test-node"
  }
}
service "ns2/svc2" {
  cluster_ips = ["172.30.0.42"]
  port {
    name = "http"
    port = 80
  }
  port {
    name        = "https"
    port        = 443
    target_port = 8443
  }
  port {
    name     = "dns-udp"
    protocol = "UDP"
    port     = 53
  }
  port {
    name        = "dns-tcp"
    port        = 53
    target_port = 5353
  }
  port {
    name     = "dns-sctp"
    protocol = "SCTP"
    port     = 53
  }
  endpoint {
    address = "10.180.0.1"
    node    = "test-node"
  }
  endpoint {
    address = "10.180.2.1"
    node    = "node2"
  }
}`)
	runFlows(t, h, []flow{
		{name: "simple clusterIP", src: "10.180.0.2", dst: "172.30.0.41", port: 80, output: "10.180.0.1:80"},
		{name: "hairpin to cluster IP", src: "10.180.0.1", dst: "172.30.0.41", port: 80, output: "10.180.0.1:80", masq: true},
		{name: "clusterIP with multiple endpoints", src: "10.180.0.2", dst: "172.30.0.42", port: 80, output: "10.180.0.1:80, 10.180.2.1:80"},
		{name: "clusterIP with TargetPort", src: "10.180.0.2", dst: "172.30.0.42", port: 443, output: "10.180.0.1:8443, 10.180.2.1:8443"},
		{name: "clusterIP with TCP, UDP, and SCTP on same port (TCP)", src: "10.180.0.2", dst: "172.30.0.42", port: 53, output: "10.180.0.1:5353, 10.180.2.1:5353"},
		{name: "clusterIP with TCP, UDP, and SCTP on same port (UDP)", src: "10.180.0.2", proto: "udp", dst: "172.30.0.42", port: 53, output: "10.180.0.1:53, 10.180.2.1:53"},
		{name: "clusterIP with TCP, UDP, and SCTP on same port (SCTP)", src: "10.180.0.2", proto: "sctp", dst: "172.30.0.42", port: 53, output: "10.180.0.1:53, 10.180.2.1:53"},
		{name: "TCP-only port does not match UDP traffic", src: "10.180.0.2", proto: "udp", dst: "172.30.0.42", port: 80, output: "REJECT"},
		{name: "svc1 does not accept svc2's ports", src: "10.180.0.2", dst: "172.30.0.41", port: 443, output: "REJECT"},
		{name: "packet to unallocated cluster ip", src: "10.180.0.2", dst: "172.30.0.50", port: 80, output: "DROP"},
	})
}

func TestLoadBalancer(t *testing.T) {
	h := upstreamHost(t, fakeSettings+`
service "ns1/svc1" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.41"]
  load_balancer_ips           = ["1.2.3.4", "5.6.7.8"]
  load_balancer_source_ranges = ["192.168.0.0/24", "203.0.113.0/25"]
  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }
  endpoint {
    address = "10.180.0.1"
  }
}`)
	ep := "10.180.0.1:80"
	runFlows(t, h, []flow{
		{name: "pod to cluster IP", src: pod, dst: "172.30.0.41", port: 80, output: ep},
		{name: "external to nodePort", src: client, dst: nodeIP, port: 3001, output: ep, masq: true},
		{name: "nodePort bypasses LoadBalancerSourceRanges", src: clientBlocked, dst: nodeIP, port: 3001, output: ep, masq: true},
		{name: "accepted external to LB1", src: client, dst: "1.2.3.4", port: 80, output: ep, masq: true},
		{name: "accepted external to LB2", src: client, dst: "5.6.7.8", port: 80, output: ep, masq: true},
		{name: "blocked external to LB1", src: clientBlocked, dst: "1.2.3.4", port: 80, output: "DROP"},
		{name: "blocked external to LB2", src: clientBlocked, dst: "5.6.7.8", port: 80, output: "DROP"},
		{name: "pod to LB1 (blocked by LoadBalancerSourceRanges)", src: pod, dst: "1.2.3.4", port: 80, output: "DROP"},
		{name: "pod to LB2 (blocked by LoadBalancerSourceRanges)", src: pod, dst: "5.6.7.8", port: 80, output: "DROP"},
		{name: "node to LB1 (allowed by LoadBalancerSourceRanges)", src: nodeIP, dst: "1.2.3.4", port: 80, output: ep, masq: true},
		{name: "node to LB2 (allowed by LoadBalancerSourceRanges)", src: nodeIP, dst: "5.6.7.8", port: 80, output: ep, masq: true},
		{name: "same node to LB1, SNATted to LB1 (implicitly allowed)", src: "1.2.3.4", dst: "1.2.3.4", port: 80, output: ep, masq: true},
		{name: "same node to LB2, SNATted to LB2 (implicitly allowed)", src: "5.6.7.8", dst: "5.6.7.8", port: 80, output: ep, masq: true},
	})
}

// TestNodePorts is kube-proxy's, under its four node port address
// settings: nil (nftables mode's primary node IP: 192.168.0.2, 2001:db8::1)
// and several ranges, which take the secondary node IP too.
func TestNodePorts(t *testing.T) {
	for _, tc := range []struct {
		name           string
		v6             bool
		addresses      string
		allowAltNodeIP bool
	}{
		{"ipv4", false, `["192.168.0.2/32", "2001:db8::1/128"]`, false},
		{"ipv4, multiple nodeport-addresses", false, `["192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"]`, true},
		{"ipv6", true, `["192.168.0.2/32", "2001:db8::1/128"]`, false},
		{"ipv6, multiple nodeport-addresses", true, `["192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64", "2001:db8:1::2/128"]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svcIP, ep1, ep2, node, podIP, ext, alt := "172.30.0.41", "10.180.0.1", "10.180.2.1", nodeIP, pod, client, "192.168.1.2"
			if tc.v6 {
				svcIP, ep1, ep2, node, podIP, ext, alt = "fd00:172:30::41", "fd00:10:180::1", "fd00:10:180::2:1", "2001:db8::1", "fd00:10::2", "2600:5200::1", "2001:db8:1::2"
			}
			h := upstreamHost(t, `
settings {
  node                = "test-node"
  cluster_cidrs       = ["10.0.0.0/8", "fd00:10::/64"]
  node_port_range     = "1-65535"
  node_port_addresses = `+tc.addresses+`
}
service "ns1/svc1" {
  type        = "NodePort"
  cluster_ips = ["`+svcIP+`"]
  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }
  endpoint {
    address = "`+ep1+`"
  }
  endpoint {
    address = "`+ep2+`"
    node    = "test-node"
  }
}`)
			output := netip.AddrPortFrom(netip.MustParseAddr(ep1), 80).String() + ", " + netip.AddrPortFrom(netip.MustParseAddr(ep2), 80).String()
			flows := []flow{
				{name: "pod to cluster IP", src: podIP, dst: svcIP, port: 80, output: output},
				{name: "external to nodePort", src: ext, dst: node, port: 3001, output: output, masq: true},
				{name: "node to nodePort", src: node, dst: node, port: 3001, output: output, masq: true},
			}
			if tc.allowAltNodeIP {
				flows = append(flows, flow{name: "external to nodePort on secondary IP", src: ext, dst: alt, port: 3001, output: output, masq: true})
			} else {
				flows = append(flows, flow{name: "secondary nodeIP ignores NodePorts", src: ext, dst: alt, port: 3001, output: ""})
			}
			runFlows(t, h, flows)
		})
	}
}

const policyService = `
service "ns1/svc1" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.41"]
  external_ips            = ["192.168.99.11"]
  load_balancer_ips       = ["1.2.3.4"]
  external_traffic_policy = "%s"
  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }
  endpoint {
    address = "10.180.0.1"
  }
  endpoint {
    address = "10.180.2.1"
    node    = "test-node"
  }
}`

func TestExternalTrafficPolicyLocal(t *testing.T) {
	h := upstreamHost(t, fakeSettings+strings.Replace(policyService, "%s", "Local", 1))
	both, local := "10.180.0.1:80, 10.180.2.1:80", "10.180.2.1:80"
	runFlows(t, h, []flow{
		{name: "pod to cluster IP hits both endpoints, unmasqueraded", src: pod, dst: "172.30.0.41", port: 80, output: both},
		{name: "pod to external IP hits both endpoints, unmasqueraded", src: pod, dst: "192.168.99.11", port: 80, output: both},
		{name: "external to external IP hits only local endpoint, unmasqueraded", src: client, dst: "192.168.99.11", port: 80, output: local},
		{name: "pod to LB IP hits only both endpoints, unmasqueraded", src: pod, dst: "1.2.3.4", port: 80, output: both},
		{name: "external to LB IP hits only local endpoint, unmasqueraded", src: client, dst: "1.2.3.4", port: 80, output: local},
		{name: "pod to NodePort hits both endpoints, unmasqueraded", src: pod, dst: nodeIP, port: 3001, output: both},
		{name: "external to NodePort hits only local endpoint, unmasqueraded", src: client, dst: nodeIP, port: 3001, output: local},
	})
}

func TestExternalTrafficPolicyCluster(t *testing.T) {
	h := upstreamHost(t, fakeSettings+strings.Replace(policyService, "%s", "Cluster", 1))
	both := "10.180.0.1:80, 10.180.2.1:80"
	runFlows(t, h, []flow{
		{name: "pod to cluster IP hits both endpoints, unmasqueraded", src: pod, dst: "172.30.0.41", port: 80, output: both},
		{name: "pod to external IP hits both endpoints, masqueraded", src: pod, dst: "192.168.99.11", port: 80, output: both, masq: true},
		{name: "external to external IP hits both endpoints, masqueraded", src: client, dst: "192.168.99.11", port: 80, output: both, masq: true},
		{name: "pod to LB IP hits both endpoints, masqueraded", src: pod, dst: "1.2.3.4", port: 80, output: both, masq: true},
		{name: "external to LB IP hits both endpoints, masqueraded", src: client, dst: "1.2.3.4", port: 80, output: both, masq: true},
		{name: "pod to NodePort hits both endpoints, masqueraded", src: pod, dst: nodeIP, port: 3001, output: both, masq: true},
		{name: "external to NodePort hits both endpoints, masqueraded", src: client, dst: nodeIP, port: 3001, output: both, masq: true},
	})
}

// The internal traffic policy and terminating endpoint cases are the
// iptables renderer's HCL of the same kube-proxy tests (their services
// and endpoints are the nftables tests' too), with the flows of the
// nftables tests.
func iptablesCase(t *testing.T, name string) Host {
	t.Helper()
	cfg, diags := config.Load("../../iptables/render/testdata/hcl/" + name + ".hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return upstreamHostOf(t, cfg)
}

func TestInternalTrafficPolicy(t *testing.T) {
	for _, tc := range []struct {
		hcl    string
		output string
	}{
		{"internal_policy_cluster", "10.0.1.1:80, 10.0.1.2:80, 10.0.1.3:80"},
		{"internal_policy_local", "10.0.1.1:80"},
		{"internal_policy_local_no_local_endpoints", "DROP"},
	} {
		t.Run(tc.hcl, func(t *testing.T) {
			runFlows(t, iptablesCase(t, tc.hcl), []flow{{name: "pod to ClusterIP", src: pod, dst: "172.30.1.1", port: 80, output: tc.output}})
		})
	}
	// internalTrafficPolicy is local and there are multiple local endpoints
	h := upstreamHost(t, fakeSettings+`
service "ns1/svc1" {
  cluster_ips             = ["172.30.1.1"]
  internal_traffic_policy = "Local"
  port {
    port = 80
  }
  endpoint {
    address = "10.0.1.1"
    node    = "test-node"
  }
  endpoint {
    address = "10.0.1.2"
    node    = "test-node"
  }
  endpoint {
    address = "10.0.1.3"
    node    = "node2"
  }
}`)
	runFlows(t, h, []flow{{name: "pod to ClusterIP hits all local endpoints", src: pod, dst: "172.30.1.1", port: 80, output: "10.0.1.1:80, 10.0.1.2:80"}})
}

func TestTerminatingEndpoints(t *testing.T) {
	for _, tc := range []struct {
		hcl              string
		toCluster, toLB  string
		lbMasq, cipAlive bool
	}{
		// TestTerminatingEndpointsTrafficPolicyLocal
		{"terminating_local_ready", "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", "10.0.1.1:80, 10.0.1.2:80", false, true},
		{"terminating_local_only_terminating", "10.0.1.5:80", "10.0.1.2:80, 10.0.1.3:80", false, true},
		{"terminating_local_remote_terminating", "10.0.1.5:80", "DROP", false, true},
		{"terminating_local_no_usable_distinct", "REJECT", "REJECT", false, false},
		// TestTerminatingEndpointsTrafficPolicyCluster
		{"terminating_cluster_ready", "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", true, true},
		{"terminating_cluster_only_terminating", "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", true, true},
		{"terminating_cluster_remote_terminating", "10.0.1.5:80", "10.0.1.5:80", true, true},
		{"terminating_cluster_no_usable_distinct", "REJECT", "REJECT", false, false},
	} {
		t.Run(tc.hcl, func(t *testing.T) {
			runFlows(t, iptablesCase(t, tc.hcl), []flow{
				{name: "pod to clusterIP", src: pod, dst: "172.30.1.1", port: 80, output: tc.toCluster},
				{name: "external to LB", src: client, dst: "1.2.3.4", port: 80, output: tc.toLB, masq: tc.lbMasq},
			})
		})
	}
}

// TestInternalExternalMasquerade is kube-proxy's 27 flows in its four
// variants: with and without a local traffic detector (cluster_cidrs),
// with and without masquerade_all. Upstream's svc1 and svc3 also set a
// health-check node port, which kube-proxy ignores under Cluster policy
// and svcnat's configuration refuses there: left out.
func TestInternalExternalMasquerade(t *testing.T) {
	services := `
service "ns1/svc1" {
  type                   = "LoadBalancer"
  cluster_ips            = ["172.30.0.41"]
  load_balancer_ips      = ["1.2.3.4"]
  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }
  endpoint {
    address = "10.180.0.1"
    node    = "test-node"
  }
  endpoint {
    address = "10.180.1.1"
    node    = "remote"
  }
}
service "ns2/svc2" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.42"]
  load_balancer_ips       = ["5.6.7.8"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30002
  port {
    name      = "p80"
    port      = 80
    node_port = 3002
  }
  endpoint {
    address = "10.180.0.2"
    node    = "test-node"
  }
  endpoint {
    address = "10.180.1.2"
    node    = "remote"
  }
}
service "ns3/svc3" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.43"]
  load_balancer_ips       = ["9.10.11.12"]
  internal_traffic_policy = "Local"
  port {
    name      = "p80"
    port      = 80
    node_port = 3003
  }
  endpoint {
    address = "10.180.0.3"
    node    = "test-node"
  }
  endpoint {
    address = "10.180.1.3"
    node    = "remote"
  }
}`
	s1, s2, s2local, s3, s3local := "10.180.0.1:80, 10.180.1.1:80", "10.180.0.2:80, 10.180.1.2:80", "10.180.0.2:80", "10.180.0.3:80, 10.180.1.3:80", "10.180.0.3:80"
	base := []flow{
		{name: "pod to ClusterIP", src: pod, dst: "172.30.0.41", port: 80, output: s1},
		{name: "pod to NodePort", src: pod, dst: nodeIP, port: 3001, output: s1, masq: true},
		{name: "pod to LB", src: pod, dst: "1.2.3.4", port: 80, output: s1, masq: true},
		{name: "node to ClusterIP", src: nodeIP, dst: "172.30.0.41", port: 80, output: s1, masq: true},
		{name: "node to NodePort", src: nodeIP, dst: nodeIP, port: 3001, output: s1, masq: true},
		{name: "node to LB", src: nodeIP, dst: "1.2.3.4", port: 80, output: s1, masq: true},
		{name: "external to ClusterIP", src: client, dst: "172.30.0.41", port: 80, output: s1, masq: true},
		{name: "external to NodePort", src: client, dst: nodeIP, port: 3001, output: s1, masq: true},
		{name: "external to LB", src: client, dst: "1.2.3.4", port: 80, output: s1, masq: true},
		{name: "pod to ClusterIP with eTP:Local", src: pod, dst: "172.30.0.42", port: 80, output: s2},
		{name: "pod to NodePort with eTP:Local", src: pod, dst: nodeIP, port: 3002, output: s2},
		{name: "pod to LB with eTP:Local", src: pod, dst: "5.6.7.8", port: 80, output: s2},
		{name: "node to ClusterIP with eTP:Local", src: nodeIP, dst: "172.30.0.42", port: 80, output: s2, masq: true},
		{name: "node to NodePort with eTP:Local", src: nodeIP, dst: nodeIP, port: 3001, output: s1, masq: true},
		{name: "node to LB with eTP:Local", src: nodeIP, dst: "5.6.7.8", port: 80, output: s2, masq: true},
		{name: "external to ClusterIP with eTP:Local", src: client, dst: "172.30.0.42", port: 80, output: s2, masq: true},
		{name: "external to NodePort with eTP:Local", src: client, dst: nodeIP, port: 3002, output: s2local},
		{name: "external to LB with eTP:Local", src: client, dst: "5.6.7.8", port: 80, output: s2local},
		{name: "pod to ClusterIP with iTP:Local", src: pod, dst: "172.30.0.43", port: 80, output: s3local},
		{name: "pod to NodePort with iTP:Local", src: pod, dst: nodeIP, port: 3003, output: s3, masq: true},
		{name: "pod to LB with iTP:Local", src: pod, dst: "9.10.11.12", port: 80, output: s3, masq: true},
		{name: "node to ClusterIP with iTP:Local", src: nodeIP, dst: "172.30.0.43", port: 80, output: s3local, masq: true},
		{name: "node to NodePort with iTP:Local", src: nodeIP, dst: nodeIP, port: 3003, output: s3, masq: true},
		{name: "node to LB with iTP:Local", src: nodeIP, dst: "9.10.11.12", port: 80, output: s3, masq: true},
		{name: "external to ClusterIP with iTP:Local", src: client, dst: "172.30.0.43", port: 80, output: s3local, masq: true},
		{name: "external to NodePort with iTP:Local", src: client, dst: nodeIP, port: 3003, output: s3, masq: true},
		{name: "external to LB with iTP:Local", src: client, dst: "9.10.11.12", port: 80, output: s3, masq: true},
	}
	type override struct {
		output *string
		masq   *bool
	}
	yes, no := true, false
	for _, tc := range []struct {
		name          string
		masqueradeAll bool
		localDetector bool
		overrides     map[string]override
	}{
		{"base", false, true, nil},
		{"no LocalTrafficDetector", false, false, map[string]override{
			"node to ClusterIP": {masq: &no}, "node to ClusterIP with eTP:Local": {masq: &no}, "node to ClusterIP with iTP:Local": {masq: &no},
			"external to ClusterIP": {masq: &no}, "external to ClusterIP with eTP:Local": {masq: &no}, "external to ClusterIP with iTP:Local": {masq: &no},
			"pod to NodePort with eTP:Local": {output: &s2local}, "pod to LB with eTP:Local": {output: &s2local},
		}},
		{"masqueradeAll", true, true, map[string]override{
			"pod to ClusterIP": {masq: &yes}, "pod to ClusterIP with eTP:Local": {masq: &yes}, "pod to ClusterIP with iTP:Local": {masq: &yes},
		}},
		{"masqueradeAll, no LocalTrafficDetector", true, false, map[string]override{
			"pod to ClusterIP": {masq: &yes}, "pod to ClusterIP with eTP:Local": {masq: &yes}, "pod to ClusterIP with iTP:Local": {masq: &yes},
			"pod to NodePort with eTP:Local": {output: &s2local}, "pod to LB with eTP:Local": {output: &s2local},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settings := "settings {\n  node = \"test-node\"\n  node_port_range = \"1-65535\"\n  node_port_addresses = [\"192.168.0.2/32\"]\n"
			if tc.localDetector {
				settings += "  cluster_cidrs = [\"10.0.0.0/8\"]\n"
			}
			if tc.masqueradeAll {
				settings += "  masquerade_all = true\n"
			}
			h := upstreamHost(t, settings+"}\n"+services)
			flows := append([]flow(nil), base...)
			applied := 0
			for i, f := range flows {
				o, ok := tc.overrides[f.name]
				if !ok {
					continue
				}
				applied++
				if o.output != nil {
					flows[i].output = *o.output
				}
				if o.masq != nil {
					flows[i].masq = *o.masq
				}
			}
			if applied != len(tc.overrides) {
				t.Fatalf("%d overrides match no flow", len(tc.overrides)-applied)
			}
			runFlows(t, h, flows)
		})
	}
}
