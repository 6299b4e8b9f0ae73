package render

import (
	"net/netip"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// baseChain is one of kube-proxy's base chains: named "<type>-<hook>".
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

// baseChains are kube-proxy's since v1.34 (kubernetes PR #132456), with
// numeric priorities: the load-balancer source-range firewall before DNAT
// (dstnat-10), the no-endpoint and cluster-IP checks at filter priority in
// the hooks where reject is allowed before kernel 5.9, DNAT at dstnat and
// masquerade at srcnat.
var baseChains = []baseChain{
	{filterPreroutingPreDNATChain, knftables.FilterType, knftables.PreroutingHook, "-110"},
	{filterOutputPreDNATChain, knftables.FilterType, knftables.OutputHook, "-110"},
	{filterInputChain, knftables.FilterType, knftables.InputHook, "0"},
	{filterForwardChain, knftables.FilterType, knftables.ForwardHook, "0"},
	{filterOutputChain, knftables.FilterType, knftables.OutputHook, "0"},
	{natPreroutingChain, knftables.NATType, knftables.PreroutingHook, "-100"},
	{natOutputChain, knftables.NATType, knftables.OutputHook, "-100"},
	{natPostroutingChain, knftables.NATType, knftables.PostroutingHook, "100"},
}

// jump is one of kube-proxy's nftablesJumpChains: a rule in a base chain
// jumping to a top-level chain.
type jump struct {
	dst, src string
	ctNew    bool // only the first packet of a connection
}

// jumps are in kube-proxy's order, which is the order of the rules in
// each base chain.
var jumps = []jump{
	{nodePortEndpointsCheckChain, filterInputChain, true},
	{serviceEndpointsCheckChain, filterInputChain, true},
	{serviceEndpointsCheckChain, filterForwardChain, true},
	{serviceEndpointsCheckChain, filterOutputChain, true},
	{firewallCheckChain, filterPreroutingPreDNATChain, true},
	{firewallCheckChain, filterOutputPreDNATChain, true},
	{servicesChain, natOutputChain, false},
	{servicesChain, natPreroutingChain, false},
	{masqueradingChain, natPostroutingChain, false},
	{clusterIPsCheckChain, filterForwardChain, true},
	{clusterIPsCheckChain, filterOutputChain, true},
}

// affinitySetSize is how many (endpoint, client) pairs the affinity set
// holds, for every service together: kube-proxy's sets, one per endpoint,
// hold 65,535 each.
const affinitySetSize = 1 << 20

// fixedObjects declares the table and every object it has without
// services, and writes their rules and the nodeport-ips elements.
func (b *builder) fixedObjects() {
	b.decls = append(b.decls, &knftables.Table{Family: b.family, Name: b.table, Comment: knftables.PtrTo("rules for " + b.table)})
	for _, bc := range baseChains {
		b.decls = append(b.decls, &knftables.Chain{
			Family: b.family, Table: b.table, Name: bc.name,
			Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook), Priority: knftables.PtrTo(bc.priority),
		})
	}
	for _, c := range []string{nodePortEndpointsCheckChain, serviceEndpointsCheckChain, firewallCheckChain,
		servicesChain, masqueradingChain, clusterIPsCheckChain} {
		b.chain(c)
	}
	b.decls = append(b.decls, &knftables.Chain{Family: b.family, Table: b.table, Name: rejectChain,
		Comment: knftables.PtrTo("helper for @no-endpoint-services / @no-endpoint-nodeports")})

	b.set(hairpinConnectionsSet, b.addrType+" . "+b.addrType+" . inet_proto . inet_service", "service hairpin connections")
	b.set(clusterIPsSet, b.addrType, "Active ClusterIPs")
	if !b.np.MatchAll {
		b.set(nodePortIPsSet, b.addrType, "IPs that accept NodePort traffic")
	}
	b.vmap(noEndpointServicesMap, b.addrType+" . inet_proto . inet_service", "vmap to drop or reject packets to services with no endpoints")
	b.vmap(noEndpointNodePortsMap, "inet_proto . inet_service", "vmap to drop or reject packets to service nodeports with no endpoints")
	b.vmap(firewallIPsMap, b.addrType+" . inet_proto . inet_service", "destinations that are subject to LoadBalancerSourceRanges")
	b.vmap(serviceIPsMap, b.addrType+" . inet_proto . inet_service", "ClusterIP, ExternalIP and LoadBalancer IP traffic")
	b.vmap(serviceNodePortsMap, "inet_proto . inet_service", "NodePort traffic")
	for _, proto := range protocols {
		b.decls = append(b.decls, &knftables.Map{Family: b.family, Table: b.table, Name: vipEndpointsMap(proto),
			TypeOf:  b.ipX + " daddr . " + proto + " dport . numgen random mod 1 : " + b.ipX + " daddr . " + proto + " dport",
			Comment: knftables.PtrTo(proto + " endpoints of every service without a chain, by destination and index")})
	}
	// "dynamic" because the packet path adds to it (and RHEL 8's kernel
	// adds the flag itself otherwise, so a second add would differ); the
	// size, because nft 1.0.6 gives a dynamic set without one 65,535
	// entries, and a full set stops recording affinity.
	b.decls = append(b.decls, &knftables.Set{Family: b.family, Table: b.table, Name: affinitySetName,
		TypeOf:  "numgen random mod 1 . " + b.ipX + " saddr",
		Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
		Size:    knftables.PtrTo(uint64(affinitySetSize)),
		Comment: knftables.PtrTo("ClientIP affinity: endpoint slot . client")})

	for _, j := range jumps {
		if j.ctNew {
			b.rule(j.src, "", "ct state new", "jump", j.dst)
		} else {
			b.rule(j.src, "", "jump", j.dst)
		}
	}
	b.masqueradingRules()
	b.clusterIPsCheckRules()
	b.noEndpointRules()
	b.rule(firewallCheckChain, "", b.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", firewallIPsMap)
	b.servicesRules()
	b.nodePortIPs()
}

// nodePortIPs fills nodeport-ips with the host's addresses that
// node_port_addresses selects, loopback excepted.
func (b *builder) nodePortIPs() {
	if b.np.MatchAll {
		return
	}
	for _, ip := range b.np.NodeIPs(b.opts.LocalAddresses) {
		if !ip.IsLoopback() {
			b.element(nodePortIPsSet, []string{ip.String()}, "")
		}
	}
}

func (b *builder) set(name, typ, comment string) {
	b.decls = append(b.decls, &knftables.Set{Family: b.family, Table: b.table, Name: name, Type: typ, Comment: knftables.PtrTo(comment)})
}

func (b *builder) vmap(name, key, comment string) {
	b.decls = append(b.decls, &knftables.Map{Family: b.family, Table: b.table, Name: name, Type: key + " : verdict", Comment: knftables.PtrTo(comment)})
}

// masqueradingRules SNAT what was marked for masquerade, clearing the mark
// so a packet that goes through the stack again is not masqueraded twice,
// and hairpin connections: an endpoint reaching itself through its
// service, recognised after DNAT by source and destination being the same
// local endpoint (hairpin-connections).
func (b *builder) masqueradingRules() {
	b.rule(masqueradingChain, "", "mark", "and", b.mark, "!=", "0", "mark", "set", "mark", "xor", b.mark, "masquerade fully-random")
	b.rule(masqueradingChain, "", "ct status dnat",
		b.ipX, "saddr", ".", b.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "@", hairpinConnectionsSet,
		"masquerade fully-random")
}

// clusterIPsCheckRules reject traffic to a cluster IP's undefined ports
// (what DNAT did not take) and drop traffic to unallocated addresses of
// the service CIDRs.
func (b *builder) clusterIPsCheckRules() {
	b.rule(clusterIPsCheckChain, "Reject traffic to invalid ports of ClusterIPs", b.ipX, "daddr", "@", clusterIPsSet, "reject")
	var cidrs []string
	for _, c := range b.opts.ServiceCIDRs {
		if inFamily(b.fam, c.Addr()) {
			cidrs = append(cidrs, c.Masked().String())
		}
	}
	if len(cidrs) > 0 {
		// kube-proxy keeps its ServiceCIDRs as one comma-separated string.
		b.rule(clusterIPsCheckChain, "Drop traffic to unallocated ClusterIPs", b.ipX, "daddr", "{", strings.Join(cidrs, ","), "}", "drop")
	}
}

// noEndpointRules fill reject-chain (reject is no verdict, so the maps go
// to a chain that rejects) and look up the no-endpoint maps.
func (b *builder) noEndpointRules() {
	b.rule(rejectChain, "", "reject")
	b.rule(serviceEndpointsCheckChain, "", b.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", noEndpointServicesMap)
	if b.np.MatchAll {
		b.rule(nodePortEndpointsCheckChain, "", b.noLocalhost(), "meta l4proto . th dport", "vmap", "@", noEndpointNodePortsMap)
	} else {
		b.rule(nodePortEndpointsCheckChain, "", b.ipX, "daddr", "@", nodePortIPsSet, "meta l4proto . th dport", "vmap", "@", noEndpointNodePortsMap)
	}
}

// servicesRules fill services: mark cluster-IP traffic from outside the
// cluster (or all of it with masquerade_all) for masquerade, then
// dispatch service addresses and node ports through the verdict maps.
func (b *builder) servicesRules() {
	switch {
	case b.settings.MasqueradeAll:
		b.rule(servicesChain, "masquerade all clusterIP traffic", b.ipX, "daddr", "@", clusterIPsSet, b.masqRule)
	case b.detect.implemented():
		b.rule(servicesChain, "masquerade clusterIP traffic from outside cluster", b.ipX, "daddr", "@", clusterIPsSet, b.detect.ifNotLocal, b.masqRule)
	}
	b.rule(servicesChain, "", b.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", serviceIPsMap)
	if b.np.MatchAll {
		b.rule(servicesChain, "", "fib daddr type local", b.noLocalhost(), "meta l4proto . th dport", "vmap", "@", serviceNodePortsMap)
	} else {
		b.rule(servicesChain, "", b.ipX, "daddr @nodeport-ips", "meta l4proto . th dport", "vmap", "@", serviceNodePortsMap)
	}
}

// noLocalhost keeps node ports off the loopback addresses: nftables mode
// has no localhost node ports.
func (b *builder) noLocalhost() string {
	if b.fam == backend.IPv6 {
		return "ip6 daddr != ::1"
	}
	return "ip daddr != 127.0.0.0/8"
}

// localDetector is kube-proxy's ClusterCIDR LocalTrafficDetector: traffic
// from the cluster (pod) CIDR is from a pod. kube-proxy supports one CIDR
// per family, so the first of the family is used. Without one the
// detector is not implemented: no masquerade rule for off-cluster
// cluster-IP traffic and no pod short-circuit in external chains.
type localDetector struct {
	ifLocal, ifNotLocal string
}

func newLocalDetector(fam backend.Family, cidrs []netip.Prefix) localDetector {
	ipX := "ip"
	if fam == backend.IPv6 {
		ipX = "ip6"
	}
	for _, c := range cidrs {
		if inFamily(fam, c.Addr()) {
			s := c.Masked().String()
			return localDetector{ifLocal: ipX + " saddr " + s, ifNotLocal: ipX + " saddr != " + s}
		}
	}
	return localDetector{}
}

func (d localDetector) implemented() bool { return d.ifLocal != "" }
