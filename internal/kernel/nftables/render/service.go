package render

import (
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"go4.org/netipx"
	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
)

// servicePort is one port of one service in one family: the service
// model's decisions (service.Port) with the names they take in
// kube-proxy's nftables objects, so that each function below only writes.
type servicePort struct {
	*service.Port
	svc     string // the service's name
	proto   string // lower case
	port    string // the service port
	comment string // ServicePortName, as element comments carry it

	serviceChain, localChain, externalChain, firewallChain string
	internalChain, externalPolicyChain                     string
	// chainless: the port has no service chain; its cluster IP's
	// service-ips element goes to a dispatch chain (see dispatch).
	chainless bool
	// epChains name each of Port.Endpoints, by Endpoint.Index, as
	// kube-proxy names its endpoint chain: the identity its affinity slot
	// is derived from (no such chain is written).
	epChains []string
}

func (b *builder) newServicePort(p *service.Port) *servicePort {
	name := p.Service.Config.Name
	proto := strings.ToLower(p.Config.Protocol)
	base := portNameBase(name, proto, p.Config.Name)
	sp := &servicePort{
		Port:          p,
		svc:           name,
		proto:         proto,
		port:          strconv.Itoa(p.Config.Port),
		comment:       truncateComment(servicePortName(name, p.Config.Name)),
		serviceChain:  servicePrefix + base,
		localChain:    localPrefix + base,
		externalChain: externalPrefix + base,
		firewallChain: firewallPrefix + base,
		epChains:      make([]string, len(p.Endpoints)),
	}
	sp.internalChain, sp.externalPolicyChain = sp.serviceChain, sp.serviceChain
	if p.Service.InternalPolicyLocal {
		sp.internalChain = sp.localChain
	}
	if p.Service.ExternalPolicyLocal {
		sp.externalPolicyChain = sp.localChain
	}
	for i, ep := range p.Endpoints {
		eb := endpointNameBase(name, proto, p.Config.Name, ep)
		sp.epChains[i] = endpointPrefix + eb
	}
	return sp
}

// filterVerdict is the no-endpoint maps' verdict for traffic the model
// does not serve: reject without endpoints anywhere, drop without local
// ones under Local policy.
func filterVerdict(o service.Outcome) string {
	if o == service.Drop {
		return "drop"
	}
	return "goto " + rejectChain
}

// firewalled is kube-proxy nftables mode's usesFWChain: load-balancer IPs
// held to source ranges, with or without endpoints (the firewall runs
// before DNAT, so a blocked source is dropped even where others are
// rejected). The service model's Firewalled also asks for endpoints, as
// the iptables mode's FW chain does.
func (sp *servicePort) firewalled() bool {
	return len(sp.LoadBalancerIPs) > 0 && len(sp.SourceRanges) > 0
}

// chainlessShape reports whether the service chain of sp would be one
// plain endpoint pick reached from the cluster IP's service-ips element
// alone: the cluster IP is served by Cluster policy, without affinity,
// and nothing else goes to the service chain (no node port, external or
// load-balancer IP, whose external chain would; no local chain). Such a
// port gets no chain (see dispatch).
func (sp *servicePort) chainlessShape() bool {
	return sp.Internal == service.Serve && !sp.Service.InternalPolicyLocal && len(sp.Cluster) > 0 &&
		sp.Service.AffinityTimeout == 0 && !sp.ExternallyAccessible && !sp.ExternalPath && len(sp.Local) == 0
}

// writeServicePort writes every object of one service port, feature by
// feature, in the order kube-proxy writes them.
func (b *builder) writeServicePort(sp *servicePort) {
	// A cluster IP key an earlier port's external IP took (the first
	// entry wins, see the package doc) keeps the chain shape: the
	// chainless one would leave its endpoints unreachable and unnamed.
	sp.chainless = sp.chainlessShape() && !b.has(serviceIPsMap, sp.key(sp.ClusterIP.String()))
	b.hairpinElements(sp)
	b.clusterIPElements(sp)
	b.externalIPElements(sp)
	b.loadBalancerElements(sp)
	b.nodePortElements(sp)
	b.externalChain(sp)
	b.firewallChain(sp)
	affinity := sp.Service.AffinityTimeout > 0
	if sp.chainless {
		b.dispatch(sp)
	} else if len(sp.Cluster) > 0 {
		b.serviceChain(sp.serviceChain, sp.svc)
		b.endpointSelection(sp, sp.serviceChain, sp.Cluster, affinity)
	}
	if len(sp.Local) > 0 {
		b.serviceChain(sp.localChain, sp.svc)
		b.endpointSelection(sp, sp.localChain, sp.Local, affinity)
	}
}

// hairpinElements add each local endpoint some traffic may reach to
// hairpin-connections: an endpoint reaching itself through its service is
// masqueraded, so that its reply goes back through the DNAT. An endpoint
// on another node cannot hairpin here.
func (b *builder) hairpinElements(sp *servicePort) {
	for _, ep := range sp.Reachable {
		if ep.Local {
			ip := ep.Addr.String()
			b.element(hairpinConnectionsSet, []string{ip, ip, sp.proto, strconv.Itoa(ep.Port)}, "")
		}
	}
}

// key is a service-ips, no-endpoint-services or firewall-ips key.
func (sp *servicePort) key(ip string) []string { return []string{ip, sp.proto, sp.port} }

// clusterIPElements capture the cluster IP: dispatched to the internal
// chain, or rejected (no endpoints) or dropped (internal policy Local,
// none here). cluster-ips holds it either way, for cluster-ips-check.
func (b *builder) clusterIPElements(sp *servicePort) {
	cip := sp.ClusterIP.String()
	b.element(clusterIPsSet, []string{cip}, "")
	if sp.chainless {
		// The comment names the service: no chain name does.
		b.element(serviceIPsMap, sp.key(cip), sp.comment, "goto "+dispatchChain(sp.proto, len(sp.Cluster)))
		return
	}
	if sp.Internal == service.Serve {
		b.element(serviceIPsMap, sp.key(cip), "", "goto "+sp.internalChain)
		return
	}
	b.element(noEndpointServicesMap, sp.key(cip), sp.comment, filterVerdict(sp.Internal))
}

// externalIPElements send the external IPs to the external chain, and
// reject or drop them when there is no endpoint for external traffic
// (what the external chain did not short-circuit).
func (b *builder) externalIPElements(sp *servicePort) {
	for _, ip := range sp.ExternalIPs {
		if sp.HasEndpoints {
			b.element(serviceIPsMap, sp.key(ip.String()), "", "goto "+sp.externalChain)
		}
		if sp.External != service.Serve {
			b.element(noEndpointServicesMap, sp.key(ip.String()), sp.comment, filterVerdict(sp.External))
		}
	}
}

// loadBalancerElements send the load-balancer IPs to the external chain
// and, with source ranges, through the firewall chain first; and reject
// or drop them without endpoints for external traffic.
func (b *builder) loadBalancerElements(sp *servicePort) {
	for _, ip := range sp.LoadBalancerIPs {
		if sp.HasEndpoints {
			b.element(serviceIPsMap, sp.key(ip.String()), "", "goto "+sp.externalChain)
		}
		if sp.firewalled() {
			b.element(firewallIPsMap, sp.key(ip.String()), "", "goto "+sp.firewallChain)
		}
	}
	if sp.External != service.Serve {
		for _, ip := range sp.LoadBalancerIPs {
			b.element(noEndpointServicesMap, sp.key(ip.String()), sp.comment, filterVerdict(sp.External))
		}
	}
}

// nodePortElements send the node port to the external chain. Node ports
// are not subject to load-balancer source ranges, as in kube-proxy.
func (b *builder) nodePortElements(sp *servicePort) {
	np := sp.Config.NodePort
	if np == 0 {
		return
	}
	key := []string{sp.proto, strconv.Itoa(np)}
	if sp.HasEndpoints {
		b.element(serviceNodePortsMap, key, "", "goto "+sp.externalChain)
	}
	if sp.External != service.Serve {
		b.element(noEndpointNodePortsMap, key, sp.comment, filterVerdict(sp.External))
	}
}

// externalChain fills the external chain: with Cluster policy, mark for
// masquerade and go to the service chain; with Local policy, send pod and
// host traffic to the service chain (the host's masqueraded, its source
// being the external address itself) and the rest to the local chain, if
// there are local endpoints (otherwise no-endpoint-services drops it).
func (b *builder) externalChain(sp *servicePort) {
	if !sp.ExternalPath {
		return
	}
	ext := sp.externalChain
	b.serviceChain(ext, sp.svc)
	if !sp.Service.ExternalPolicyLocal {
		b.rule(ext, "masquerade", b.masqRule)
	} else {
		if b.detect.implemented() {
			b.rule(ext, "short-circuit pod traffic", b.detect.ifLocal, "goto", sp.serviceChain)
		}
		b.rule(ext, "masquerade local traffic", "fib saddr type local", b.masqRule)
		b.rule(ext, "short-circuit local traffic", "fib saddr type local", "goto", sp.serviceChain)
	}
	if sp.External == service.Serve {
		b.rule(ext, "", "goto", sp.externalPolicyChain)
	}
}

// firewallChain drops sources outside the load-balancer source ranges;
// the load-balancer IPs themselves are allowed too when a range holds a
// local address (a VIP the host answers for loops back with it as source).
func (b *builder) firewallChain(sp *servicePort) {
	if !sp.firewalled() {
		return
	}
	var ips []netip.Addr
	if sp.AllowFromNode {
		ips = sp.LoadBalancerIPs
	}
	b.serviceChain(sp.firewallChain, sp.svc)
	b.rule(sp.firewallChain, "", b.ipX, "saddr", "!=", "{", strings.Join(sourceSet(sp.SourceRanges, ips), " , "), "}", "drop")
}

// sourceSet is the sources a firewall chain admits, as the elements of
// the anonymous interval set nft keeps for them: the union of the ranges
// and addresses, in address order, each stretch of addresses once, as a
// prefix (an address alone) where it is one and a range where it is not.
// nft merges what overlaps or touches as it loads a set (10.0.0.0/8 with
// 10.1.0.0/16 is 10.0.0.0/8; a load-balancer IP inside a range is the
// range) and lists what it kept, so that only this form reads back as it
// was written.
func sourceSet(ranges []netip.Prefix, ips []netip.Addr) []string {
	var sb netipx.IPSetBuilder
	for _, r := range ranges {
		sb.AddPrefix(r)
	}
	for _, ip := range ips {
		sb.Add(ip)
	}
	set, _ := sb.IPSet() // only invalid prefixes make an error, and the configuration has none
	var out []string
	for _, r := range set.Ranges() {
		switch p, ok := r.Prefix(); {
		case ok && p.IsSingleIP():
			out = append(out, p.Addr().String())
		case ok:
			out = append(out, p.String())
		default:
			out = append(out, r.From().String()+"-"+r.To().String())
		}
	}
	return out
}

// endpointSelection fills a service or local chain, whose endpoints are
// its range of its protocol's endpoints map (elements base … base+N-1).
// Without affinity it is one rule: DNAT to the endpoint numgen picks in
// the range, uniformly. With ClientIP affinity, a client the affinity set
// holds with an endpoint's slot goes back to that endpoint, refreshing
// its entry; otherwise one endpoint is picked uniformly (rule i matches
// with probability 1/(N-i), the last always) and the client recorded with
// it. An update fails when the set is full, which ends its rule: the last
// rule then picks from the map without recording, as kube-proxy's
// endpoint chains do with a full set (their update fails, the DNAT after
// it runs).
func (b *builder) endpointSelection(sp *servicePort, chain string, eps []service.Endpoint, affinity bool) {
	base := b.slots.base[chain]
	m := b.endpointsMap(sp, base)
	for i, ep := range eps {
		b.element(m, []string{strconv.FormatUint(uint64(base)+uint64(i), 10)}, "", ep.Addr.String(), strconv.Itoa(ep.Port))
	}
	if affinity {
		timeout := strconv.Itoa(sp.Service.AffinityTimeout) + "s"
		record := func(ep service.Endpoint) []any {
			key := b.affinityKey(sp, ep)
			return []any{"update", "@", affinitySetName, "{", key, "timeout", timeout, "}",
				"meta l4proto", sp.proto, "dnat to", ep.String()}
		}
		for _, ep := range eps {
			b.rule(chain, "", append([]any{b.affinityKey(sp, ep), "@", affinitySetName}, record(ep)...)...)
		}
		for i, ep := range eps {
			if i < len(eps)-1 {
				b.rule(chain, "", append([]any{"numgen random mod", len(eps) - i, "0"}, record(ep)...)...)
			} else {
				b.rule(chain, "", record(ep)...)
			}
		}
	}
	b.rule(chain, "", "meta l4proto", sp.proto, "dnat", b.ipX, "addr . port to",
		"numgen random mod", len(eps), "offset", base, "map", "@", m)
}

// endpointsMap is the endpoints map of sp's protocol holding the range at
// base, declared when a chain first needs it: like a dispatch chain, it
// exists while a service uses it (Result.Users), so a table of a few
// services has a few of the 16 shards a protocol may have.
func (b *builder) endpointsMap(sp *servicePort, base uint32) string {
	m := endpointsMap(sp.proto, base)
	if !b.declared[m] {
		b.declared[m] = true
		b.decls = append(b.decls, endpointsMapDecl(b.family, b.table, b.ipX, sp.proto, m))
	}
	b.use(m, sp.svc)
	return m
}

// endpointsMapDecl declares endpoints map name of proto.
func endpointsMapDecl(family knftables.Family, table, ipX, proto, name string) *knftables.Map {
	return &knftables.Map{Family: family, Table: table, Name: name,
		TypeOf:  "numgen random mod 1 : " + ipX + " daddr . " + proto + " dport",
		Comment: knftables.PtrTo(proto + " endpoints of service chains, by numgen offset")}
}

// EndpointsMaps are every endpoints map family fam's table may have, of
// every protocol and shard, declared as the renderer declares them: what
// a plan check compares a declaration with.
func EndpointsMaps(fam backend.Family) (*backend.Ruleset, error) {
	b := newBuilder(fam, &config.Settings{}, Options{Table: DefaultTable})
	tx := knftables.NewFake(b.family, b.table).NewTransaction()
	tx.Add(&knftables.Table{Family: b.family, Name: b.table})
	for _, proto := range protocols {
		for i := 0; i < endpointShards; i++ {
			tx.Add(endpointsMapDecl(b.family, b.table, b.ipX, proto, endpointsMap(proto, uint32(i)<<rangeBits)))
		}
	}
	return ToModel(fam, tx.String())
}

// use records that svc uses obj, a chain or map made for its users.
func (b *builder) use(obj, svc string) {
	if users := b.users[obj]; len(users) == 0 || users[len(users)-1] != svc {
		b.users[obj] = append(users, svc)
	}
}

// affinityKey is the affinity set's key of ep's clients: the endpoint's
// slot, as the one constant nft 1.0.6 admits in a concatenation
// ("numgen random mod 1 offset K" is always K), and the client address.
func (b *builder) affinityKey(sp *servicePort, ep service.Endpoint) string {
	return knftables.Concat("numgen random mod 1 offset", b.slots.affinity[sp.epChains[ep.Index]], ".", b.ipX, "saddr")
}

// dispatch writes a chainless port's endpoints (what its service chain's
// one rule would pick among) into its protocol's vip-endpoints map, keyed
// by the cluster IP, the port and the endpoint's index, and declares the
// dispatch chain of its protocol and endpoint count once for the table:
// one rule picking an index uniformly and DNATing to the element of the
// packet's own destination and that index,
//
//	dnat ip addr . port to ip daddr . tcp dport . numgen random mod 5 map @vip-endpoints-tcp
//
// ("tcp dport" in the key makes nft match the protocol itself: it lists
// the rule without "meta l4proto tcp" whether written or not).
//
// Why: nf_tables' load time grows with the number of chains, about
// quadratically; at 10,000 plain cluster-IP services this takes away
// most of the table's chains (see the package doc).
//
// A port of n endpoints uses, in the sense of Result.Users, the dispatch
// chains of every count from 1 to n rounded up to a power of two, not its
// own alone: the chain of each count up to the largest in use, rounded
// so, exists. So an endpoint that a health check takes out (5 → 4), or
// one more (5 → 6), moves the element to a chain that is there already:
// the change writes and verifies elements only, where making a chain cost
// nft a listing of the table's rules to verify it (1.4 s at 10,000
// services). Rounding up bounds the chains to twice the largest count.
func (b *builder) dispatch(sp *servicePort) {
	n := len(sp.Cluster)
	for k := 1; k <= 1<<bits.Len(uint(n-1)); k++ {
		chain := dispatchChain(sp.proto, k)
		if !b.declared[chain] {
			b.declared[chain] = true
			b.chain(chain)
			b.rule(chain, "", "dnat", b.ipX, "addr . port to", b.ipX, "daddr .", sp.proto, "dport . numgen random mod", k,
				"map", "@", vipEndpointsMap(sp.proto))
		}
		b.use(chain, sp.svc)
	}
	cip := sp.ClusterIP.String()
	for i, ep := range sp.Cluster {
		b.element(vipEndpointsMap(sp.proto), []string{cip, sp.port, strconv.Itoa(i)}, "", ep.Addr.String(), strconv.Itoa(ep.Port))
	}
}
