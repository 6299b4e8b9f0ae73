package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// servicePort is one port of one service in one family, with every
// decision syncProxyRules makes about it computed up front, so that each
// rule-writing function below only writes.
type servicePort struct {
	svc           *config.Service
	port          *config.Port
	name          string // ServicePortName
	proto         string // lower case
	clusterIP     netip.Addr
	externalIPs   []netip.Addr
	lbIPs         []netip.Addr
	sourceRanges  []netip.Prefix
	chains        vocab.PortChains
	eps           categorized
	endpointCount int // every endpoint of the family, for large-cluster mode

	externalPolicyLocal, internalPolicyLocal bool

	hasEndpoints, hasInternal, hasExternal bool
	usesClusterChain, usesLocalChain       bool
	usesExternalChain, usesFirewallChain   bool
	internalChain, externalPolicyChain     string
	loadBalancerChain                      string

	internalFilterTarget, internalFilterComment string
	externalFilterTarget, externalFilterComment string
}

func (b *builder) newServicePort(svc *config.Service, port *config.Port, cip netip.Addr) *servicePort {
	sp := &servicePort{
		svc:       svc,
		port:      port,
		name:      vocab.ServicePortName(svc.Name, port.Name),
		proto:     strings.ToLower(port.Protocol),
		clusterIP: cip,
		chains:    b.v.PortChains(vocab.ServicePortName(svc.Name, port.Name), port.Protocol),
	}
	sp.externalIPs = addrsOf(b, svc.ExternalIPs)
	sp.lbIPs = addrsOf(b, svc.LoadBalancerIPs)
	for _, r := range svc.LoadBalancerSourceRanges {
		if !inFamily(b.fam, r.Addr()) {
			continue
		}
		if r.Bits() == 0 {
			// A zero-length range allows everything, the same as no
			// range at all (kube-proxy's IsZeroCIDR).
			sp.sourceRanges = nil
			break
		}
		sp.sourceRanges = append(sp.sourceRanges, r.Masked())
	}
	// apiservice.ExternalPolicyLocal: only NodePort and LoadBalancer
	// services have an external traffic policy.
	sp.externalPolicyLocal = (svc.Type == config.TypeNodePort || svc.Type == config.TypeLoadBalancer) &&
		svc.ExternalTrafficPolicy == config.PolicyLocal
	sp.internalPolicyLocal = svc.InternalTrafficPolicy == config.PolicyLocal
	externallyAccessible := port.NodePort != 0 || len(sp.externalIPs) > 0 || len(sp.lbIPs) > 0

	all := portEndpoints(b.v, b.opts.Node, b.fam, svc, port)
	sp.endpointCount = len(all)
	usesCluster := !sp.internalPolicyLocal || externallyAccessible
	usesLocal := sp.internalPolicyLocal || (sp.externalPolicyLocal && externallyAccessible)
	sp.eps = categorize(all, usesCluster, usesLocal)
	sp.decide(externallyAccessible, usesCluster, usesLocal)
	return sp
}

func addrsOf(b *builder, ips []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if inFamily(b.fam, ip) {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// decide mirrors the chain and filter decisions at the top of
// syncProxyRules' per-service loop.
func (sp *servicePort) decide(externallyAccessible, usesCluster, usesLocal bool) {
	sp.hasEndpoints = sp.eps.hasAny
	sp.usesClusterChain = len(sp.eps.cluster) > 0 && usesCluster
	sp.usesLocalChain = len(sp.eps.local) > 0 && usesLocal

	sp.internalChain, sp.hasInternal = sp.chains.SVC, sp.hasEndpoints
	if sp.internalPolicyLocal {
		sp.internalChain = sp.chains.SVL
		sp.hasInternal = sp.hasInternal && len(sp.eps.local) > 0
	}
	sp.externalPolicyChain, sp.hasExternal = sp.chains.SVC, sp.hasEndpoints
	if sp.externalPolicyLocal {
		sp.externalPolicyChain = sp.chains.SVL
		sp.hasExternal = sp.hasExternal && len(sp.eps.local) > 0
	}
	// The EXT chain exists whenever there are endpoints anywhere, even with
	// none for external traffic, for the local-traffic short circuits.
	sp.usesExternalChain = sp.hasEndpoints && externallyAccessible
	sp.usesFirewallChain = sp.hasEndpoints && len(sp.lbIPs) > 0 && len(sp.sourceRanges) > 0
	sp.loadBalancerChain = sp.chains.EXT
	if sp.usesFirewallChain {
		sp.loadBalancerChain = sp.chains.FW
	}

	if !sp.hasEndpoints {
		sp.internalFilterTarget, sp.externalFilterTarget = "REJECT", "REJECT"
		sp.internalFilterComment = vocab.Comment(vocab.NoEndpoints, sp.name)
		sp.externalFilterComment = sp.internalFilterComment
		return
	}
	if !sp.hasInternal {
		sp.internalFilterTarget, sp.internalFilterComment = "DROP", vocab.Comment(vocab.NoLocalEndpoints, sp.name)
	}
	if !sp.hasExternal {
		sp.externalFilterTarget, sp.externalFilterComment = "DROP", vocab.Comment(vocab.NoLocalEndpoints, sp.name)
	}
}

// writeServicePort writes every rule of one service port, feature by
// feature, in the order kube-proxy writes them.
func (b *builder) writeServicePort(sp *servicePort) {
	b.clusterIPRule(sp)
	b.externalIPRules(sp)
	b.loadBalancerRules(sp)
	b.nodePortRules(sp)
	b.healthCheckNodePortRule(sp)
	b.internalMasqueradeRule(sp)
	b.externalChainRules(sp)
	b.firewallChainRules(sp)
	if sp.usesClusterChain {
		b.declare(b.nat, sp.chains.SVC, sp.svc)
		b.endpointSelectionRules(sp, sp.chains.SVC, sp.eps.cluster)
	}
	if sp.usesLocalChain {
		b.declare(b.nat, sp.chains.SVL, sp.svc)
		b.endpointSelectionRules(sp, sp.chains.SVL, sp.eps.local)
	}
	for _, ep := range sp.eps.reachable {
		b.endpointChainRules(sp, ep)
	}
}

// dest is "-m <p> -p <p> -d <ip> --dport <port>", kube-proxy's match for a
// service address.
func (sp *servicePort) dest(ip netip.Addr, port int) []string {
	return a("-m", sp.proto, "-p", sp.proto, "-d", ip.String(), "--dport", strconv.Itoa(port))
}

// clusterIPRule captures the cluster IP in nat KUBE-SERVICES, or rejects
// (no endpoints) or drops (internal policy Local, none here) it in filter.
func (b *builder) clusterIPRule(sp *servicePort) {
	f := b.fixed
	if sp.hasInternal {
		add(b.nat, f.services, comment(vocab.Comment(vocab.ClusterIP, sp.name)), sp.dest(sp.clusterIP, sp.port.Port), a("-j", sp.internalChain))
		return
	}
	add(b.filter, f.services, comment(sp.internalFilterComment), sp.dest(sp.clusterIP, sp.port.Port), a("-j", sp.internalFilterTarget))
}

// externalIPRules capture the external IPs into the EXT chain, and reject
// or drop them in filter when there is no endpoint for external traffic.
func (b *builder) externalIPRules(sp *servicePort) {
	f := b.fixed
	for _, ip := range sp.externalIPs {
		if sp.hasEndpoints {
			add(b.nat, f.services, comment(vocab.Comment(vocab.ExternalIP, sp.name)), sp.dest(ip, sp.port.Port), a("-j", sp.chains.EXT))
		}
		if !sp.hasExternal {
			add(b.filter, f.externalServices, comment(sp.externalFilterComment), sp.dest(ip, sp.port.Port), a("-j", sp.externalFilterTarget))
		}
	}
}

// loadBalancerRules capture the load-balancer IPs (through the FW chain
// when source ranges apply), drop what the FW chain did not accept in
// KUBE-PROXY-FIREWALL, and reject or drop them when there is no endpoint.
func (b *builder) loadBalancerRules(sp *servicePort) {
	f := b.fixed
	for _, ip := range sp.lbIPs {
		if sp.hasEndpoints {
			add(b.nat, f.services, comment(vocab.Comment(vocab.LoadBalancerIP, sp.name)), sp.dest(ip, sp.port.Port), a("-j", sp.loadBalancerChain))
		}
		if sp.usesFirewallChain {
			add(b.filter, f.proxyFirewall, comment(vocab.Comment(vocab.NotAccepted, sp.name, sp.chains.FW)),
				sp.dest(ip, sp.port.Port), a("-j", "DROP"))
		}
	}
	if !sp.hasExternal {
		for _, ip := range sp.lbIPs {
			add(b.filter, f.externalServices, comment(sp.externalFilterComment), sp.dest(ip, sp.port.Port), a("-j", sp.externalFilterTarget))
		}
	}
}

// nodePortRules send the node port to the EXT chain. Node ports are not
// subject to load-balancer source ranges, as in kube-proxy.
func (b *builder) nodePortRules(sp *servicePort) {
	np := sp.port.NodePort
	if np == 0 {
		return
	}
	f := b.fixed
	if sp.hasEndpoints {
		add(b.nat, f.nodePorts, comment(vocab.Comment(vocab.PortRule, sp.name)), a("-m", sp.proto, "-p", sp.proto, "--dport", strconv.Itoa(np), "-j", sp.chains.EXT))
	}
	if !sp.hasExternal {
		add(b.filter, f.externalServices, comment(sp.externalFilterComment),
			a("-m", "addrtype", "--dst-type", "LOCAL", "-m", sp.proto, "-p", sp.proto, "--dport", strconv.Itoa(np), "-j", sp.externalFilterTarget))
	}
}

// healthCheckNodePortRule accepts the health check node port, always TCP,
// even without local endpoints. Like apiservice.NeedsHealthCheck it applies
// only to LoadBalancer services with external traffic policy Local.
func (b *builder) healthCheckNodePortRule(sp *servicePort) {
	hc := sp.svc.HealthCheckNodePort
	if hc == 0 || sp.svc.Type != config.TypeLoadBalancer || !sp.externalPolicyLocal {
		return
	}
	add(b.filter, b.fixed.nodePorts, comment(vocab.Comment(vocab.HealthCheckNodePort, sp.name)),
		a("-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(hc), "-j", "ACCEPT"))
}

// internalMasqueradeRule marks cluster-IP traffic from outside the cluster
// CIDR (or all of it with masquerade_all) for masquerade, first in the
// internal chain.
func (b *builder) internalMasqueradeRule(sp *servicePort) {
	if !sp.hasInternal {
		return
	}
	match := append(comment(vocab.Comment(vocab.ClusterIP, sp.name)), sp.dest(sp.clusterIP, sp.port.Port)...)
	switch {
	case b.settings.MasqueradeAll:
		add(b.nat, sp.internalChain, match, a("-j", b.fixed.markMasq))
	case b.detect.implemented():
		add(b.nat, sp.internalChain, match, b.detect.ifNotLocal, a("-j", b.fixed.markMasq))
	}
}

// externalChainRules fill the EXT chain: with Cluster policy, masquerade
// and go to SVC; with Local policy, short-circuit pod and host traffic to
// SVC and send the rest to SVL, if there are local endpoints.
func (b *builder) externalChainRules(sp *servicePort) {
	if !sp.usesExternalChain {
		return
	}
	ext, masq := sp.chains.EXT, b.fixed.markMasq
	b.declare(b.nat, ext, sp.svc)
	if !sp.externalPolicyLocal {
		add(b.nat, ext, comment(vocab.Comment(vocab.ExternalMasquerade, sp.name)), a("-j", masq))
	} else {
		if b.detect.implemented() {
			add(b.nat, ext, comment(vocab.Comment(vocab.PodShortCircuit, sp.name)), b.detect.ifLocal, a("-j", sp.chains.SVC))
		}
		add(b.nat, ext, comment(vocab.Comment(vocab.LocalMasquerade, sp.name)),
			a("-m", "addrtype", "--src-type", "LOCAL", "-j", masq))
		add(b.nat, ext, comment(vocab.Comment(vocab.LocalShortCircuit, sp.name)),
			a("-m", "addrtype", "--src-type", "LOCAL", "-j", sp.chains.SVC))
	}
	if sp.hasExternal {
		add(b.nat, ext, a("-j", sp.externalPolicyChain))
	}
}

// firewallChainRules fill the FW chain: accept each source range, and the
// load-balancer IPs themselves when a range contains a local address; what
// falls off the end is dropped by KUBE-PROXY-FIREWALL.
func (b *builder) firewallChainRules(sp *servicePort) {
	if !sp.usesFirewallChain {
		return
	}
	fw := sp.chains.FW
	b.declare(b.nat, fw, sp.svc)
	c := comment(vocab.Comment(vocab.LoadBalancerIP, sp.name))
	allowFromNode := false
	for _, r := range sp.sourceRanges {
		add(b.nat, fw, c, a("-s", r.String(), "-j", sp.chains.EXT))
		allowFromNode = allowFromNode || b.containsLocalAddress(r)
	}
	if allowFromNode {
		for _, ip := range sp.lbIPs {
			add(b.nat, fw, c, a("-s", ip.String(), "-j", sp.chains.EXT))
		}
	}
	add(b.nat, fw, comment(vocab.Comment(vocab.OtherTrafficDropped, sp.name, b.fixed.proxyFirewall)))
}

// containsLocalAddress stands in for kube-proxy's cidr.Contains(nodeIP).
func (b *builder) containsLocalAddress(r netip.Prefix) bool {
	for _, ip := range b.opts.LocalAddresses {
		if ip = ip.Unmap(); !ip.IsLoopback() && r.Contains(ip) {
			return true
		}
	}
	return false
}

// epComment is the comment of a per-endpoint rule, dropped in large-cluster
// mode as kube-proxy's appendServiceCommentLocked does.
func (b *builder) epComment(text string) []string {
	if b.largeCluster {
		return nil
	}
	return comment(text)
}

// endpointSelectionRules fill an SVC or SVL chain: first the ClientIP
// affinity checks, then one rule per endpoint, the i-th of n matching with
// probability 1/(n-i) and the last unconditionally.
func (b *builder) endpointSelectionRules(sp *servicePort, chain string, eps []endpoint) {
	if sp.svc.SessionAffinity == config.AffinityClientIP {
		for _, ep := range eps {
			add(b.nat, chain, b.epComment(vocab.Comment(vocab.EndpointChoice, sp.name, ep.str)),
				a("-m", "recent", "--name", ep.chain, "--rcheck", "--seconds", strconv.Itoa(affinityTimeout(sp.svc)), "--reap", "-j", ep.chain))
		}
	}
	n := len(eps)
	for i, ep := range eps {
		var stat []string
		if i < n-1 {
			stat = a("-m", "statistic", "--mode", "random", "--probability", probability(n-i))
		}
		add(b.nat, chain, b.epComment(vocab.Comment(vocab.EndpointChoice, sp.name, ep.str)), stat, a("-j", ep.chain))
	}
}

// endpointChainRules fill a SEP chain: mark hairpin traffic (an endpoint
// reaching itself through the service) for masquerade, record affinity,
// and DNAT.
func (b *builder) endpointChainRules(sp *servicePort, ep endpoint) {
	b.declare(b.nat, ep.chain, sp.svc)
	c := b.epComment(vocab.Comment(vocab.PortRule, sp.name))
	add(b.nat, ep.chain, c, a("-s", ep.addr.String(), "-j", b.fixed.markMasq))
	var affinity []string
	if sp.svc.SessionAffinity == config.AffinityClientIP {
		affinity = a("-m", "recent", "--name", ep.chain, "--set")
	}
	add(b.nat, ep.chain, c, affinity, a("-m", sp.proto, "-p", sp.proto, "-j", "DNAT", "--to-destination", ep.str))
}

// probability is kube-proxy's computeProbability: 1/n with 10 decimals.
func probability(n int) string { return fmt.Sprintf("%0.10f", 1.0/float64(n)) }

func affinityTimeout(svc *config.Service) int {
	if svc.SessionAffinityTimeout > 0 {
		return svc.SessionAffinityTimeout
	}
	return config.DefaultSessionAffinityTimeout
}
