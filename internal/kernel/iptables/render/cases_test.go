package render

import (
	"net/netip"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// The golden cases mirror kube-proxy's unit tests in
// pkg/proxy/iptables/proxier_test.go: each builds the same Services and
// EndpointSlices as config values, with the settings of kube-proxy's
// NewFakeProxier (pod CIDR detector 10.0.0.0/8, localhost node ports on,
// node "test-node", no --random-fully). testdata/<name>.kube-proxy holds
// upstream's expected output, with a header naming the test.

// testNodeName stands for upstream's testNodeName / testHostname.
const testNodeName = "test-node"

// upstreamOpts are the options matching NewFakeProxier: its fake network
// has 127.0.0.1 and ::1 on lo and the test node IPs on eth0.
func upstreamOpts() Options {
	return Options{
		Node: testNodeName,
		LocalAddresses: ips("127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11",
			"2001:db8::1", "2001:db8:1::2"),
	}
}

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

// kubeSettings are NewFakeProxier's settings with chain prefix KUBE.
func kubeSettings(mods ...func(*config.Settings)) config.Settings {
	s := config.Settings{
		ChainPrefix:        "KUBE",
		ClusterCIDRs:       prefixes("10.0.0.0/8"),
		MasqueradeBit:      config.DefaultMasqueradeBit,
		NodePortRange:      config.PortRange{Min: 1, Max: 65535},
		LocalhostNodePorts: true,
	}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func noClusterCIDR(s *config.Settings) { s.ClusterCIDRs = nil }

func localhostNodePorts(on bool) func(*config.Settings) {
	return func(s *config.Settings) { s.LocalhostNodePorts = on }
}

func nodePortAddrs(cidrs ...string) func(*config.Settings) {
	return func(s *config.Settings) { s.NodePortAddresses = prefixes(cidrs...) }
}

func cfg(s config.Settings, services ...*config.Service) *config.Config {
	return &config.Config{Settings: s, Services: services}
}

// newService returns a service with the API defaults, changed by mod.
func newService(name, typ, clusterIP string, mod func(*config.Service)) *config.Service {
	s := &config.Service{
		Name:                   name,
		Type:                   typ,
		ClusterIPs:             ips(clusterIP),
		ExternalTrafficPolicy:  config.PolicyCluster,
		InternalTrafficPolicy:  config.PolicyCluster,
		SessionAffinity:        config.AffinityNone,
		SessionAffinityTimeout: config.DefaultSessionAffinityTimeout,
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func port(name, proto string, p, nodePort int) *config.Port {
	return &config.Port{Name: name, Protocol: proto, Port: p, TargetPort: p, NodePort: nodePort}
}

func tcp(name string, p, nodePort int) *config.Port { return port(name, config.ProtoTCP, p, nodePort) }

// ep is an EndpointSlice endpoint with no conditions set: ready and serving.
func ep(addr, node string) *config.Endpoint {
	return &config.Endpoint{Address: netip.MustParseAddr(addr), Node: node, Ready: true, Serving: true}
}

func epCond(addr, node string, ready, serving, terminating bool) *config.Endpoint {
	return &config.Endpoint{Address: netip.MustParseAddr(addr), Node: node, Ready: ready, Serving: serving, Terminating: terminating}
}

type goldenCase struct {
	name string
	// fam is the family of testdata/<name>.kube-proxy; 0 for cases
	// without upstream text, which only have canonical goldens and the
	// kernel round trip.
	fam  backend.Family
	cfg  *config.Config
	opts Options
}

func goldenCases() []goldenCase {
	v4, v6 := backend.IPv4, backend.IPv6
	o := upstreamOpts()
	cases := []goldenCase{
		{"overall", v4, overallConfig(kubeSettings()), o},
		{"loadbalancer", v4, cfg(kubeSettings(), newService("ns1/svc1", config.TypeLoadBalancer, "172.30.0.41", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 3001)}
			s.LoadBalancerIPs = ips("1.2.3.4", "5.6.7.8")
			s.LoadBalancerSourceRanges = prefixes("192.168.0.0/24", "203.0.113.0/25")
			s.Endpoints = []*config.Endpoint{ep("10.180.0.1", "")}
		})), o},
		{"nodeport", v4, cfg(kubeSettings(), newService("ns1/svc1", config.TypeNodePort, "172.30.0.41", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 3001)}
			s.Endpoints = []*config.Endpoint{ep("10.180.0.1", "")}
		})), o},
		{"healthcheck_no_endpoints", v4, cfg(kubeSettings(nodePortAddrs("127.0.0.0/8")), newService("ns1/svc1", config.TypeLoadBalancer, "172.30.0.42", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 3001)}
			s.HealthCheckNodePort = 30000
			s.ExternalTrafficPolicy = config.PolicyLocal
		})), o},
		{"external_policy_local", v4, cfg(kubeSettings(), newService("ns1/svc1", config.TypeLoadBalancer, "172.30.0.41", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 3001)}
			s.HealthCheckNodePort = 30000
			s.ExternalIPs = ips("192.168.99.11")
			s.LoadBalancerIPs = ips("1.2.3.4")
			s.ExternalTrafficPolicy = config.PolicyLocal
			s.Endpoints = []*config.Endpoint{ep("10.180.0.1", ""), ep("10.180.2.1", testNodeName)}
		})), o},
		{"non_local_external_ips", v4, cfg(kubeSettings(), newService("ns1/svc1", config.TypeClusterIP, "172.30.0.41", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 0)}
			s.ExternalIPs = ips("192.168.99.11")
			s.Endpoints = []*config.Endpoint{ep("10.180.0.1", ""), ep("10.180.2.1", testNodeName)}
		})), o},
		{"localhost_nodeports_ipv4_enabled", v4, cfg(kubeSettings(noClusterCIDR, localhostNodePorts(true)), localNodePortService("10.69.0.10", "10.244.0.1", "10.244.2.1")), o},
		{"localhost_nodeports_ipv4_disabled", v4, cfg(kubeSettings(noClusterCIDR, localhostNodePorts(false)), localNodePortService("10.69.0.10", "10.244.0.1", "10.244.2.1")), o},
		{"localhost_nodeports_ipv4_disabled_node_address", v4, cfg(kubeSettings(noClusterCIDR, localhostNodePorts(false), nodePortAddrs("127.0.0.0/8")),
			localNodePortService("10.69.0.10", "10.244.0.1", "10.244.2.1")), o},
		{"localhost_nodeports_ipv6_enabled", v6, cfg(kubeSettings(noClusterCIDR, localhostNodePorts(true)), localNodePortService("fd00:ab34::20", "ff06::c1", "ff06::c2")), o},
		{"localhost_nodeports_ipv6_disabled", v6, cfg(kubeSettings(noClusterCIDR, localhostNodePorts(false)), localNodePortService("fd00:ab34::20", "ff06::c1", "ff06::c2")), o},
		{"only_local_nodeports", v4, cfg(kubeSettings(localhostNodePorts(false), nodePortAddrs("192.168.0.0/24", "2001:db8::/64")),
			onlyLocalNodePortService()), o},
		{"only_local_nodeports_no_cluster_cidr", v4, cfg(kubeSettings(noClusterCIDR, localhostNodePorts(false), nodePortAddrs("192.168.0.0/24", "2001:db8::/64")),
			onlyLocalNodePortService()), o},
		{"internal_policy_cluster", v4, cfg(kubeSettings(), internalPolicyService(config.PolicyCluster, testNodeName, "host1", "host2")), o},
		{"internal_policy_local", v4, cfg(kubeSettings(), internalPolicyService(config.PolicyLocal, testNodeName, "host1", "host2")), o},
		{"internal_policy_local_no_local_endpoints", v4, cfg(kubeSettings(), internalPolicyService(config.PolicyLocal, "host0", "host1", "host2")), o},
		{"masquerade", v4, cfg(kubeSettings()), o},
	}
	rf := upstreamOpts()
	rf.RandomFully = true
	cases = append(cases, goldenCase{"masquerade_random_fully", v4, cfg(kubeSettings()), rf})
	for _, policy := range []string{config.PolicyLocal, config.PolicyCluster} {
		for name, eps := range terminatingEndpoints(policy) {
			cases = append(cases, goldenCase{"terminating_" + map[string]string{config.PolicyLocal: "local", config.PolicyCluster: "cluster"}[policy] + "_" + name,
				v4, cfg(kubeSettings(), terminatingService(policy, eps)), o})
		}
	}
	return append(cases, extraCases()...)
}

// overallConfig is TestOverallIPTablesRules' six services.
func overallConfig(s config.Settings) *config.Config {
	return cfg(s,
		newService("ns1/svc1", config.TypeClusterIP, "172.30.0.41", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 0)}
			s.Endpoints = []*config.Endpoint{ep("10.180.0.1", "")}
		}),
		// LoadBalancer with Local traffic policy; its only endpoint has no
		// node name, so it is not local.
		newService("ns2/svc2", config.TypeLoadBalancer, "172.30.0.42", func(s *config.Service) {
			s.ExternalTrafficPolicy = config.PolicyLocal
			s.Ports = []*config.Port{tcp("p80", 80, 3001)}
			s.LoadBalancerIPs = ips("1.2.3.4")
			s.ExternalIPs = ips("192.168.99.22")
			s.HealthCheckNodePort = 30000
			s.Endpoints = []*config.Endpoint{ep("10.180.0.2", "")}
		}),
		newService("ns3/svc3", config.TypeNodePort, "172.30.0.43", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 3003)}
			s.Endpoints = []*config.Endpoint{ep("10.180.0.3", "")}
		}),
		newService("ns4/svc4", config.TypeNodePort, "172.30.0.44", func(s *config.Service) {
			s.ExternalIPs = ips("192.168.99.33")
			s.Ports = []*config.Port{tcp("p80", 80, 0)}
			s.Endpoints = []*config.Endpoint{ep("10.180.0.4", ""), ep("10.180.0.5", testNodeName)}
		}),
		// LoadBalancer with Cluster traffic policy, source ranges and
		// session affinity. Its health check node port does not apply.
		newService("ns5/svc5", config.TypeLoadBalancer, "172.30.0.45", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 3002)}
			s.LoadBalancerIPs = ips("5.6.7.8")
			s.HealthCheckNodePort = 30000
			s.LoadBalancerSourceRanges = prefixes("203.0.113.0/25")
			s.SessionAffinity = config.AffinityClientIP
			s.SessionAffinityTimeout = 10800
			s.Endpoints = []*config.Endpoint{ep("10.180.0.3", "")}
		}),
		newService("ns6/svc6", config.TypeClusterIP, "172.30.0.46", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("p80", 80, 0)}
		}),
	)
}

// localNodePortService is the service of the Enable/DisableLocalhostNodePorts tests.
func localNodePortService(cip, remote, local string) *config.Service {
	return newService("ns1/svc1", config.TypeNodePort, cip, func(s *config.Service) {
		s.Ports = []*config.Port{tcp("p80", 80, 30001)}
		s.ExternalTrafficPolicy = config.PolicyLocal
		s.Endpoints = []*config.Endpoint{ep(remote, ""), ep(local, testNodeName)}
	})
}

// onlyLocalNodePortService is the service of upstream's onlyLocalNodePorts helper.
func onlyLocalNodePortService() *config.Service {
	return newService("ns1/svc1", config.TypeNodePort, "172.30.0.41", func(s *config.Service) {
		s.Ports = []*config.Port{tcp("p80", 80, 3001)}
		s.ExternalTrafficPolicy = config.PolicyLocal
		s.Endpoints = []*config.Endpoint{ep("10.180.0.1", ""), ep("10.180.2.1", testNodeName)}
	})
}

// internalPolicyService is TestInternalTrafficPolicyE2E's service: an
// unnamed port, three ready endpoints on the given nodes.
func internalPolicyService(policy string, nodes ...string) *config.Service {
	return newService("ns1/svc1", config.TypeClusterIP, "172.30.1.1", func(s *config.Service) {
		s.InternalTrafficPolicy = policy
		s.Ports = []*config.Port{tcp("", 80, 0)}
		for i, n := range nodes {
			s.Endpoints = append(s.Endpoints, ep(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}).String(), n))
		}
	})
}

// terminatingService is the service of TestTerminatingEndpointsTrafficPolicy{Local,Cluster}:
// a LoadBalancer without node port, with ClientIP affinity and a health
// check node port (which applies only with policy Local).
func terminatingService(policy string, eps []*config.Endpoint) *config.Service {
	return newService("ns1/svc1", config.TypeLoadBalancer, "172.30.1.1", func(s *config.Service) {
		s.ExternalTrafficPolicy = policy
		s.Ports = []*config.Port{tcp("", 80, 0)}
		s.HealthCheckNodePort = 30000
		s.SessionAffinity = config.AffinityClientIP
		s.SessionAffinityTimeout = 10800
		s.LoadBalancerIPs = ips("1.2.3.4")
		s.Endpoints = eps
	})
}

// terminatingEndpoints are the EndpointSlices of the terminating tests.
func terminatingEndpoints(policy string) map[string][]*config.Endpoint {
	const n = testNodeName
	if policy == config.PolicyLocal {
		return map[string][]*config.Endpoint{
			"ready": {
				epCond("10.0.1.1", n, true, true, false),
				epCond("10.0.1.2", n, true, true, false),
				epCond("10.0.1.3", n, false, true, true),
				epCond("10.0.1.4", n, false, false, true),
				epCond("10.0.1.5", "host-1", true, true, false),
			},
			"only_terminating": {
				epCond("10.0.1.2", n, false, true, true),
				epCond("10.0.1.3", n, false, true, true),
				epCond("10.0.1.4", n, false, false, true),
				epCond("10.0.1.5", "host-1", true, true, false),
			},
			"remote_terminating": {epCond("10.0.1.5", "host-1", false, true, true)},
			"no_usable": {
				epCond("10.0.1.5", n, false, false, true),
				epCond("10.0.1.5", "host-1", false, false, true),
			},
		}
	}
	return map[string][]*config.Endpoint{
		"ready": {
			epCond("10.0.1.1", n, true, true, false),
			epCond("10.0.1.2", n, true, true, false),
			epCond("10.0.1.3", "another-host", false, true, true),
			epCond("10.0.1.4", "another-host", false, false, true),
			epCond("10.0.1.5", "another-host", true, true, false),
		},
		"only_terminating": {
			epCond("10.0.1.2", n, false, true, true),
			epCond("10.0.1.3", n, false, true, true),
			epCond("10.0.1.4", "another-host", false, false, true),
			epCond("10.0.1.5", "another-host", false, true, true),
		},
		"remote_terminating": {epCond("10.0.1.5", "host-1", false, true, true)},
		"no_usable": {
			epCond("10.0.1.5", n, false, false, true),
			epCond("10.0.1.5", "host-1", false, false, true),
		},
	}
}

// extraCases have no upstream text: they cover what the upstream cases do
// not (another prefix, dual stack, UDP and SCTP, masquerade_all,
// --random-fully, IPv6 node port addresses and source ranges) in the
// canonical goldens and the kernel round trip.
func extraCases() []goldenCase {
	dual := config.Settings{
		ChainPrefix:       "SVCNAT",
		ClusterCIDRs:      prefixes("10.64.0.0/14", "10.128.0.0/14", "fd00:10::/64"),
		MasqueradeBit:     config.DefaultMasqueradeBit,
		NodePortAddresses: prefixes("192.168.0.0/24", "2001:db8::/64"),
		NodePortRange:     config.PortRange{Min: 30000, Max: 32767},
	}
	web := newService("default/web", config.TypeLoadBalancer, "10.32.0.10", func(s *config.Service) {
		s.ClusterIPs = ips("10.32.0.10", "fd00:32::10")
		s.ExternalTrafficPolicy = config.PolicyLocal
		s.HealthCheckNodePort = 31999
		s.SessionAffinity = config.AffinityClientIP
		s.SessionAffinityTimeout = 600
		s.ExternalIPs = ips("192.168.99.10", "2001:db8:99::10")
		s.LoadBalancerIPs = ips("198.51.100.7", "2001:db8:100::7")
		s.LoadBalancerSourceRanges = prefixes("192.168.0.0/16", "2001:db8::/32")
		s.Ports = []*config.Port{tcp("http", 80, 30080), port("dns", config.ProtoUDP, 53, 30053)}
		s.Ports[0].TargetPort = 8080
		s.Endpoints = []*config.Endpoint{
			ep("10.64.1.10", testNodeName), ep("10.64.2.10", "other"), ep("10.64.1.9", testNodeName),
			ep("fd00:10::a", testNodeName), ep("fd00:10::b", "other"),
		}
	})
	sctp := newService("default/sig", config.TypeClusterIP, "10.32.0.11", func(s *config.Service) {
		s.Ports = []*config.Port{port("", config.ProtoSCTP, 3868, 0)}
		s.Endpoints = []*config.Endpoint{ep("10.64.3.1", "other")}
	})
	masqAll := kubeSettings(noClusterCIDR)
	masqAll.MasqueradeAll = true
	rf := upstreamOpts()
	rf.RandomFully = true
	return []goldenCase{
		{name: "extra_svcnat_dual_stack", cfg: cfg(dual, web, sctp), opts: rf},
		{name: "extra_masquerade_all", cfg: overallConfig(masqAll), opts: upstreamOpts()},
	}
}
