// Package service holds svcnat's service model: the decisions kube-proxy
// makes about every service port before it writes a rule, made once for
// every kernel backend. Which endpoints serve traffic under the Cluster and
// the Local traffic policy, when they fall back to serving-and-terminating
// endpoints, which endpoints are on this node, whether traffic to the
// cluster IP and to the node port, external and load-balancer IPs is
// served, rejected or dropped, and which sources may reach the
// load-balancer IPs: a backend's renderer reads these and only writes them
// in its own language, and the health-check server reads its
// local-endpoint counts from the same model, so the two never disagree.
//
// Building the model is pure: the package knows no backend (no tables,
// chains, sets or rule arguments), never touches the kernel and never
// prints. Its order is deterministic: services by name, each service's
// ports by family (IPv4 first) then name, endpoints by their ip:port
// string as kube-proxy's byEndpoint sorts them.
package service

import (
	"net/netip"
	"sort"

	"github.com/svcnat/svcnat/internal/config"
)

// Options are the facts about this node that the decisions depend on.
type Options struct {
	// Node is this node's name; an endpoint whose node equals it is local.
	// When empty, no endpoint is local.
	Node string
	// LocalAddresses are this node's addresses. A load-balancer source
	// range containing one of them (loopback aside) lets traffic from the
	// load-balancer IPs themselves in (Port.AllowFromNode).
	LocalAddresses []netip.Addr
}

// Model is the service model of one configuration on one node. A
// renderer of one address family writes, in order, the ports of each
// service whose ClusterIP is of that family.
type Model struct {
	// Services in name order, every service of the configuration, those
	// without ports or cluster IPs included.
	Services []*Service
	// IPv6 is true when some service has an IPv6 cluster IP: only then
	// does the IPv6 family carry anything.
	IPv6 bool
}

// Service is the decisions about one service that all its ports share.
type Service struct {
	// Config is the service as configured.
	Config *config.Service
	// ExternalPolicyLocal is true when external traffic policy Local is in
	// effect, which only NodePort and LoadBalancer services have
	// (kube-proxy's apiservice.ExternalPolicyLocal).
	ExternalPolicyLocal bool
	// InternalPolicyLocal is true with internal traffic policy Local.
	InternalPolicyLocal bool
	// HealthCheckNodePort is the port a load balancer probes for this
	// node's local endpoints, or 0: only a LoadBalancer service with
	// external traffic policy Local has one (apiservice.NeedsHealthCheck).
	HealthCheckNodePort int
	// AffinityTimeout is the ClientIP session affinity timeout in seconds,
	// or 0 without session affinity.
	AffinityTimeout int
	// LocalReady counts this node's ready endpoints by address (one
	// endpoint serving two ports counts once), in every family, as
	// kube-proxy's LocalReadyEndpoints does for its health-check server.
	LocalReady int
	// Ports are the service's ports per cluster IP: those of the IPv4
	// cluster IP in name order, then those of the IPv6 one.
	Ports []*Port
}

// Port is one port of one service in the family of its cluster IP, with
// the endpoints that serve it and what becomes of traffic to it.
type Port struct {
	// Service is the service the port belongs to, Config the port as
	// configured.
	Service *Service
	Config  *config.Port
	// ClusterIP is the service's cluster IP of this port's family. Every
	// other address of the port is of the same family.
	ClusterIP netip.Addr
	// ExternalIPs and LoadBalancerIPs are the service's addresses of the
	// family, in configuration order.
	ExternalIPs, LoadBalancerIPs []netip.Addr
	// SourceRanges are the load-balancer source ranges of the family,
	// masked. Empty: traffic to the load-balancer IPs is not filtered by
	// source; a zero-length range allows everything, as no range does
	// (kube-proxy's IsZeroCIDR).
	SourceRanges []netip.Prefix
	// AllowFromNode is true when a source range contains one of this
	// node's addresses: then the load-balancer IPs themselves are allowed
	// as sources too, as kube-proxy allows them when a range contains its
	// node IP.
	AllowFromNode bool
	// ExternallyAccessible is true when the port is reachable from outside
	// the node: by a node port, an external IP or a load-balancer IP
	// (kube-proxy's ServicePort.ExternallyAccessible).
	ExternallyAccessible bool

	// Endpoints are every endpoint of the service in the family, one per
	// ip:port (a local one wins a duplicate, as in kube-proxy's
	// EndpointSlice cache), in ip:port string order. Endpoint.Index is
	// an endpoint's position here.
	Endpoints []Endpoint
	// Cluster are the endpoints of Cluster traffic policy: the ready ones,
	// or when none is ready the serving-and-terminating ones. Empty when
	// the port has no use for them (internal policy Local on a port not
	// externally accessible).
	Cluster []Endpoint
	// Local are the endpoints of Local traffic policy: this node's ready
	// ones, or when none is ready its serving-and-terminating ones. Empty
	// when neither policy is Local where it applies.
	Local []Endpoint
	// Reachable are the endpoints some traffic may reach: the union of
	// Cluster and Local, in Endpoints order. Only these need anything
	// written for them.
	Reachable []Endpoint
	// HasEndpoints is true when some endpoint anywhere is usable (ready,
	// or serving and terminating).
	HasEndpoints bool
	// Internal is what becomes of traffic to the cluster IP, and External
	// of traffic to the node port, external and load-balancer IPs.
	Internal, External Outcome
	// ExternalPath is true when external traffic has a path of its own
	// to take: the port is externally accessible and has endpoints
	// somewhere. It exists even when External is Drop, for traffic from
	// pods and from this node, which Local policy sends to Cluster's
	// endpoints.
	ExternalPath bool
	// Firewalled is true when traffic to the load-balancer IPs is held to
	// SourceRanges (and AllowFromNode): the port has endpoints,
	// load-balancer IPs and source ranges. Node ports are not filtered,
	// as in kube-proxy.
	Firewalled bool
}

// Outcome is what becomes of one kind of traffic to a service port.
type Outcome uint8

const (
	// Serve sends the traffic to the port's endpoints.
	Serve Outcome = iota
	// Reject refuses the traffic: the port has no usable endpoint
	// anywhere.
	Reject
	// Drop drops the traffic: its policy is Local and this node has no
	// usable endpoint, though others may.
	Drop
)

// String names the outcome in lower case, for tests and logs.
func (o Outcome) String() string {
	switch o {
	case Serve:
		return "serve"
	case Reject:
		return "reject"
	case Drop:
		return "drop"
	}
	return "unknown"
}

// Endpoint is one endpoint of one service port, as kube-proxy's
// endpointInfo sees it.
type Endpoint struct {
	// Addr is the endpoint's address, of its port's family.
	Addr netip.Addr
	// Port is the target port the endpoint receives the traffic on.
	Port int
	// Index is the endpoint's position in its Port's Endpoints, so that a
	// renderer can name each endpoint once however many sets hold it.
	Index int
	// Local is true when the endpoint is on this node.
	Local bool
	// Ready, Serving and Terminating are the endpoint's conditions.
	Ready, Serving, Terminating bool

	str string
}

// String is kube-proxy's endpoint string, as net.JoinHostPort writes it:
// "10.1.2.3:80" or "[fd00::1]:80".
func (e Endpoint) String() string { return e.str }

// servingTerminating: usable in the fallback step of CategorizeEndpoints.
func (e Endpoint) servingTerminating() bool { return e.Serving && e.Terminating }

// Build decides every port of every service of cfg on the node opts
// describes.
func Build(cfg *config.Config, opts Options) *Model {
	services := append([]*config.Service(nil), cfg.Services...)
	sort.SliceStable(services, func(i, j int) bool { return services[i].Name < services[j].Name })
	m := &Model{Services: make([]*Service, 0, len(services))}
	for _, cs := range services {
		s := newService(cs, opts)
		m.Services = append(m.Services, s)
		if _, ok := clusterIP(cs, true); ok {
			m.IPv6 = true
		}
	}
	return m
}

func newService(cs *config.Service, opts Options) *Service {
	s := &Service{
		Config:              cs,
		ExternalPolicyLocal: (cs.Type == config.TypeNodePort || cs.Type == config.TypeLoadBalancer) && cs.ExternalTrafficPolicy == config.PolicyLocal,
		InternalPolicyLocal: cs.InternalTrafficPolicy == config.PolicyLocal,
	}
	if cs.Type == config.TypeLoadBalancer && s.ExternalPolicyLocal {
		s.HealthCheckNodePort = cs.HealthCheckNodePort
	}
	if cs.SessionAffinity == config.AffinityClientIP {
		s.AffinityTimeout = cs.SessionAffinityTimeout
		if s.AffinityTimeout <= 0 {
			s.AffinityTimeout = config.DefaultSessionAffinityTimeout
		}
	}
	localReady := map[netip.Addr]bool{}
	for _, e := range cs.Endpoints {
		if e.Ready && isLocal(opts, e) {
			localReady[e.Address.Unmap()] = true
		}
	}
	s.LocalReady = len(localReady)
	ports := append([]*config.Port(nil), cs.Ports...)
	sort.SliceStable(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
	for _, is6 := range []bool{false, true} {
		cip, ok := clusterIP(cs, is6)
		if !ok {
			continue // headless, or single-stack in the other family
		}
		for _, cp := range ports {
			s.Ports = append(s.Ports, newPort(s, cp, cip, opts))
		}
	}
	return s
}

// isLocal is the one test of an endpoint being on this node.
func isLocal(opts Options, e *config.Endpoint) bool { return opts.Node != "" && e.Node == opts.Node }

func newPort(s *Service, cp *config.Port, cip netip.Addr, opts Options) *Port {
	cs := s.Config
	p := &Port{
		Service:         s,
		Config:          cp,
		ClusterIP:       cip,
		ExternalIPs:     sameFamily(cip, cs.ExternalIPs),
		LoadBalancerIPs: sameFamily(cip, cs.LoadBalancerIPs),
	}
	for _, r := range cs.LoadBalancerSourceRanges {
		if !inFamily(r.Addr(), cip.Is6()) {
			continue
		}
		if r.Bits() == 0 {
			p.SourceRanges = nil
			break
		}
		p.SourceRanges = append(p.SourceRanges, r.Masked())
	}
	for _, r := range p.SourceRanges {
		p.AllowFromNode = p.AllowFromNode || containsLocalAddress(r, opts.LocalAddresses)
	}
	p.ExternallyAccessible = cp.NodePort != 0 || len(p.ExternalIPs) > 0 || len(p.LoadBalancerIPs) > 0
	p.Endpoints = portEndpoints(cs, cp, cip.Is6(), opts)
	p.decide(s)
	return p
}

// decide mirrors the decisions at the top of kube-proxy's per-service
// loop, common to its iptables and nftables proxiers.
func (p *Port) decide(s *Service) {
	usesCluster := !s.InternalPolicyLocal || p.ExternallyAccessible
	usesLocal := s.InternalPolicyLocal || (s.ExternalPolicyLocal && p.ExternallyAccessible)
	p.categorize(usesCluster, usesLocal)

	p.Internal, p.External = Serve, Serve
	switch {
	case !p.HasEndpoints:
		p.Internal, p.External = Reject, Reject
	default:
		if s.InternalPolicyLocal && len(p.Local) == 0 {
			p.Internal = Drop
		}
		if s.ExternalPolicyLocal && len(p.Local) == 0 {
			p.External = Drop
		}
	}
	p.ExternalPath = p.HasEndpoints && p.ExternallyAccessible
	p.Firewalled = p.HasEndpoints && len(p.LoadBalancerIPs) > 0 && len(p.SourceRanges) > 0
}

// categorize mirrors kube-proxy's CategorizeEndpoints without topology
// hints (svcnat has no zones): Cluster policy uses the ready endpoints, or
// when there is none the serving-and-terminating ones; Local policy
// likewise among the endpoints on this node. Endpoints that are neither
// ready nor serving-and-terminating are never used.
func (p *Port) categorize(usesCluster, usesLocal bool) {
	eps := p.Endpoints
	if len(eps) == 0 {
		return
	}
	if usesCluster {
		p.Cluster = filter(eps, func(e Endpoint) bool { return e.Ready })
		if len(p.Cluster) == 0 {
			p.Cluster = filter(eps, Endpoint.servingTerminating)
		}
		p.HasEndpoints = len(p.Cluster) > 0
	}
	if !usesLocal {
		p.Reachable = p.Cluster
		return
	}
	var localReady, localServingTerminating bool
	for _, e := range eps {
		switch {
		case e.Ready:
			p.HasEndpoints = true
			localReady = localReady || e.Local
		case e.servingTerminating():
			p.HasEndpoints = true
			localServingTerminating = localServingTerminating || e.Local
		}
	}
	fallback := false
	switch {
	case localReady:
		p.Local = filter(eps, func(e Endpoint) bool { return e.Local && e.Ready })
	case localServingTerminating:
		fallback = true
		p.Local = filter(eps, func(e Endpoint) bool { return e.Local && e.servingTerminating() })
	}
	switch {
	case !usesCluster:
		p.Reachable = p.Local
	case !fallback:
		// Local holds only ready endpoints, and Cluster every ready
		// endpoint, so Cluster is a superset.
		p.Reachable = p.Cluster
	default:
		p.Reachable = union(eps, p.Cluster, p.Local)
	}
}

// portEndpoints returns the endpoints of port cp in the family (IPv6 when
// is6), one per ip:port, sorted as kube-proxy's byEndpoint does: by the
// ip:port string.
func portEndpoints(cs *config.Service, cp *config.Port, is6 bool, opts Options) []Endpoint {
	byStr := map[string]int{}
	var eps []Endpoint
	for _, ce := range cs.Endpoints {
		if !inFamily(ce.Address, is6) {
			continue
		}
		addr := ce.Address.Unmap()
		tp := ce.TargetPort(cp)
		e := Endpoint{
			Addr:        addr,
			Port:        tp,
			Local:       isLocal(opts, ce),
			Ready:       ce.Ready,
			Serving:     ce.Serving,
			Terminating: ce.Terminating,
			str:         netip.AddrPortFrom(addr, uint16(tp)).String(),
		}
		if i, ok := byStr[e.str]; ok {
			if e.Local {
				eps[i] = e
			}
			continue
		}
		byStr[e.str] = len(eps)
		eps = append(eps, e)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].str < eps[j].str })
	for i := range eps {
		eps[i].Index = i
	}
	return eps
}

func filter(eps []Endpoint, keep func(Endpoint) bool) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// union returns the endpoints of all that are in a or b, in all's order.
// kube-proxy merges through a map, so its order is random there.
func union(all, a, b []Endpoint) []Endpoint {
	in := make([]bool, len(all))
	for _, e := range a {
		in[e.Index] = true
	}
	for _, e := range b {
		in[e.Index] = true
	}
	return filter(all, func(e Endpoint) bool { return in[e.Index] })
}

// clusterIP returns the service's first cluster IP of the family.
func clusterIP(cs *config.Service, is6 bool) (netip.Addr, bool) {
	for _, ip := range cs.ClusterIPs {
		if inFamily(ip, is6) {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// sameFamily returns the addresses of ips of ref's family.
func sameFamily(ref netip.Addr, ips []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if inFamily(ip, ref.Is6()) {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// inFamily reports whether a is an IPv6 address when is6, an IPv4 one
// (IPv4-mapped included) otherwise.
func inFamily(a netip.Addr, is6 bool) bool {
	if a = a.Unmap(); is6 {
		return a.Is6()
	}
	return a.Is4()
}

// containsLocalAddress stands in for kube-proxy's cidr.Contains(nodeIP).
func containsLocalAddress(r netip.Prefix, local []netip.Addr) bool {
	for _, ip := range local {
		if ip = ip.Unmap(); !ip.IsLoopback() && r.Contains(ip) {
			return true
		}
	}
	return false
}
