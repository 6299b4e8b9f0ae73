package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
	"github.com/svcnat/svcnat/internal/service"
)

// servicePort is one port of one service in one family: the service
// model's decisions (service.Port) with the names and filter verdicts
// they take in kube-proxy's iptables rules, so that each rule-writing
// function below only writes.
type servicePort struct {
	*service.Port
	svc    *config.Service
	name   string // ServicePortName
	proto  string // lower case
	chains vocab.PortChains
	// eps are the names of each of Port.Endpoints, by Endpoint.Index.
	eps []endpoint

	hasInternal, hasExternal           bool
	internalChain, externalPolicyChain string
	loadBalancerChain                  string

	internalFilterTarget, internalFilterComment string
	externalFilterTarget, externalFilterComment string
}

// endpoint is how the rules name one endpoint of a service port.
type endpoint struct {
	str   string // ip:port
	chain string // SEP chain name
}

func (b *builder) newServicePort(p *service.Port) *servicePort {
	svc := p.Service.Config
	name := vocab.ServicePortName(svc.Name, p.Config.Name)
	sp := &servicePort{
		Port:   p,
		svc:    svc,
		name:   name,
		proto:  strings.ToLower(p.Config.Protocol),
		chains: b.v.PortChains(name, p.Config.Protocol),
		eps:    make([]endpoint, len(p.Endpoints)),
	}
	for i, ep := range p.Endpoints {
		str := ep.String()
		sp.eps[i] = endpoint{str: str, chain: b.v.EndpointChain(name, p.Config.Protocol, str)}
	}
	sp.hasInternal, sp.hasExternal = p.Internal == service.Serve, p.External == service.Serve
	sp.internalChain, sp.externalPolicyChain = sp.chains.SVC, sp.chains.SVC
	if sp.Service.InternalPolicyLocal {
		sp.internalChain = sp.chains.SVL
	}
	if sp.Service.ExternalPolicyLocal {
		sp.externalPolicyChain = sp.chains.SVL
	}
	sp.loadBalancerChain = sp.chains.EXT
	if p.Firewalled {
		sp.loadBalancerChain = sp.chains.FW
	}
	sp.internalFilterTarget, sp.internalFilterComment = sp.filterVerdict(p.Internal)
	sp.externalFilterTarget, sp.externalFilterComment = sp.filterVerdict(p.External)
	return sp
}

// filterVerdict is the filter rule's target and comment for traffic the
// model does not serve: REJECT without endpoints, DROP without local ones.
func (sp *servicePort) filterVerdict(o service.Outcome) (target, text string) {
	switch o {
	case service.Reject:
		return "REJECT", vocab.Comment(vocab.NoEndpoints, sp.name)
	case service.Drop:
		return "DROP", vocab.Comment(vocab.NoLocalEndpoints, sp.name)
	}
	return "", ""
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
	if len(sp.Cluster) > 0 {
		b.declare(b.nat, sp.chains.SVC, sp.svc)
		b.endpointSelectionRules(sp, sp.chains.SVC, sp.Cluster)
	}
	if len(sp.Local) > 0 {
		b.declare(b.nat, sp.chains.SVL, sp.svc)
		b.endpointSelectionRules(sp, sp.chains.SVL, sp.Local)
	}
	for _, ep := range sp.Reachable {
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
		add(b.nat, f.services, comment(vocab.Comment(vocab.ClusterIP, sp.name)), sp.dest(sp.ClusterIP, sp.Config.Port), a("-j", sp.internalChain))
		return
	}
	add(b.filter, f.services, comment(sp.internalFilterComment), sp.dest(sp.ClusterIP, sp.Config.Port), a("-j", sp.internalFilterTarget))
}

// externalIPRules capture the external IPs into the EXT chain, and reject
// or drop them in filter when there is no endpoint for external traffic.
func (b *builder) externalIPRules(sp *servicePort) {
	f := b.fixed
	for _, ip := range sp.ExternalIPs {
		if sp.HasEndpoints {
			add(b.nat, f.services, comment(vocab.Comment(vocab.ExternalIP, sp.name)), sp.dest(ip, sp.Config.Port), a("-j", sp.chains.EXT))
		}
		if !sp.hasExternal {
			add(b.filter, f.externalServices, comment(sp.externalFilterComment), sp.dest(ip, sp.Config.Port), a("-j", sp.externalFilterTarget))
		}
	}
}

// loadBalancerRules capture the load-balancer IPs (through the FW chain
// when source ranges apply), drop what the FW chain did not accept in
// KUBE-PROXY-FIREWALL, and reject or drop them when there is no endpoint.
func (b *builder) loadBalancerRules(sp *servicePort) {
	f := b.fixed
	for _, ip := range sp.LoadBalancerIPs {
		if sp.HasEndpoints {
			add(b.nat, f.services, comment(vocab.Comment(vocab.LoadBalancerIP, sp.name)), sp.dest(ip, sp.Config.Port), a("-j", sp.loadBalancerChain))
		}
		if sp.Firewalled {
			add(b.filter, f.proxyFirewall, comment(vocab.Comment(vocab.NotAccepted, sp.name, sp.chains.FW)),
				sp.dest(ip, sp.Config.Port), a("-j", "DROP"))
		}
	}
	if !sp.hasExternal {
		for _, ip := range sp.LoadBalancerIPs {
			add(b.filter, f.externalServices, comment(sp.externalFilterComment), sp.dest(ip, sp.Config.Port), a("-j", sp.externalFilterTarget))
		}
	}
}

// nodePortRules send the node port to the EXT chain. Node ports are not
// subject to load-balancer source ranges, as in kube-proxy.
func (b *builder) nodePortRules(sp *servicePort) {
	np := sp.Config.NodePort
	if np == 0 {
		return
	}
	f := b.fixed
	if sp.HasEndpoints {
		add(b.nat, f.nodePorts, comment(vocab.Comment(vocab.PortRule, sp.name)), a("-m", sp.proto, "-p", sp.proto, "--dport", strconv.Itoa(np), "-j", sp.chains.EXT))
	}
	if !sp.hasExternal {
		add(b.filter, f.externalServices, comment(sp.externalFilterComment),
			a("-m", "addrtype", "--dst-type", "LOCAL", "-m", sp.proto, "-p", sp.proto, "--dport", strconv.Itoa(np), "-j", sp.externalFilterTarget))
	}
}

// healthCheckNodePortRule accepts the health check node port, always TCP,
// even without local endpoints.
func (b *builder) healthCheckNodePortRule(sp *servicePort) {
	hc := sp.Service.HealthCheckNodePort
	if hc == 0 {
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
	match := append(comment(vocab.Comment(vocab.ClusterIP, sp.name)), sp.dest(sp.ClusterIP, sp.Config.Port)...)
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
	if !sp.ExternalPath {
		return
	}
	ext, masq := sp.chains.EXT, b.fixed.markMasq
	b.declare(b.nat, ext, sp.svc)
	if !sp.Service.ExternalPolicyLocal {
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
	if !sp.Firewalled {
		return
	}
	fw := sp.chains.FW
	b.declare(b.nat, fw, sp.svc)
	c := comment(vocab.Comment(vocab.LoadBalancerIP, sp.name))
	for _, r := range sp.SourceRanges {
		add(b.nat, fw, c, a("-s", r.String(), "-j", sp.chains.EXT))
	}
	if sp.AllowFromNode {
		for _, ip := range sp.LoadBalancerIPs {
			add(b.nat, fw, c, a("-s", ip.String(), "-j", sp.chains.EXT))
		}
	}
	add(b.nat, fw, comment(vocab.Comment(vocab.OtherTrafficDropped, sp.name, b.fixed.proxyFirewall)))
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
func (b *builder) endpointSelectionRules(sp *servicePort, chain string, set []service.Endpoint) {
	if t := sp.Service.AffinityTimeout; t > 0 {
		for _, e := range set {
			ep := sp.eps[e.Index]
			add(b.nat, chain, b.epComment(vocab.Comment(vocab.EndpointChoice, sp.name, ep.str)),
				a("-m", "recent", "--name", ep.chain, "--rcheck", "--seconds", strconv.Itoa(t), "--reap", "-j", ep.chain))
		}
	}
	n := len(set)
	for i, e := range set {
		ep := sp.eps[e.Index]
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
func (b *builder) endpointChainRules(sp *servicePort, e service.Endpoint) {
	ep := sp.eps[e.Index]
	b.declare(b.nat, ep.chain, sp.svc)
	c := b.epComment(vocab.Comment(vocab.PortRule, sp.name))
	add(b.nat, ep.chain, c, a("-s", e.Addr.String(), "-j", b.fixed.markMasq))
	var affinity []string
	if sp.Service.AffinityTimeout > 0 {
		affinity = a("-m", "recent", "--name", ep.chain, "--set")
	}
	add(b.nat, ep.chain, c, affinity, a("-m", sp.proto, "-p", sp.proto, "-j", "DNAT", "--to-destination", ep.str))
}

// probability is kube-proxy's computeProbability: 1/n with 10 decimals.
func probability(n int) string { return fmt.Sprintf("%0.10f", 1.0/float64(n)) }
