// Package render turns a validated configuration into the nftables objects
// that kube-proxy's nftables mode would write for the same Services and
// EndpointSlices, in its vocabulary: one table per family (ip svcnat, ip6
// svcnat) with kube-proxy's base chains and priorities, the services chain
// dispatching through the service-ips and service-nodeports verdict maps,
// the cluster-ips and nodeport-ips sets, no-endpoint-services and
// no-endpoint-nodeports with reject-chain, firewall-ips, masquerading, and
// per-service service-, local-, external- and firewall- chains named with
// kube-proxy's hash. With table name "kube-proxy" and the same node facts
// the objects are those kube-proxy's proxier writes, line for line as
// knftables' Fake dumps them, but for the endpoint selection (below) and
// another order of set and map elements (see the differences below).
//
// The shape is kube-proxy's generation B, what v1.36 and later write
// (kubernetes PRs #135800 and #136499): no mark-for-masquerade chain (the
// masquerade mark is set in place), a service chain that picks its
// endpoint in one rule, hairpin traffic recognised by the
// hairpin-connections set and off-cluster traffic to cluster IPs marked by
// one rule in services. Generation C (kubernetes PR #140723, a plain "dnat
// to" for a service with one endpoint) is not written: its exact rule text
// is not in any source this project has.
//
// The endpoint selection is svcnat's own ("C2", measured with
// scripts/nftshape): where kube-proxy writes an anonymous map per service chain,
//
//	meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.180.0.1 . 80 , … }
//
// and, under ClientIP affinity, an endpoint chain and a named affinity set
// per endpoint, svcnat keeps every chain's endpoints in its own range of
// keys of one of sixteen maps per protocol (the shard of the range:
// endpointsMap, endpointShards), and every client under affinity in one
// set keyed by the endpoint's slot:
//
//	add map ip svcnat endpoints-tcp-0 { typeof numgen random mod 1 : ip daddr . tcp dport ; … }
//	add set ip svcnat affinity { typeof numgen random mod 1 . ip saddr ; flags dynamic,timeout ; size 1048576 ; … }
//	add rule … service-… meta l4proto tcp dnat ip addr . port to numgen random mod 3 offset 3539992576 map @endpoints-tcp-0
//	add element ip svcnat endpoints-tcp-0 { 3539992576 : 10.180.0.1 . 80 } (… 3539992577, 3539992578)
//
// An endpoints map, like a dispatch chain, is declared when a chain first
// picks from it and goes when the last stops (Result.Users).
//
// With affinity the service chain first sends a client the affinity set
// holds with an endpoint's slot back to that endpoint, refreshing it
// ("numgen random mod 1 offset SLOT . ip saddr @affinity update @affinity
// { … timeout 10800s } meta l4proto tcp dnat to 10.180.0.1:80", one rule
// per endpoint), then picks an endpoint uniformly and records the client
// with it ("numgen random mod 3 0 update … dnat to …", "numgen random mod
// 2 0 …", the last unconditional), and last picks from the range without
// recording, for when the set is full (the update fails and ends its
// rule). "numgen random mod 1 offset K" is how nft 1.0.6 lets a constant
// into a concatenation; it always yields K.
//
// Why: nf_tables' load time grows with the number of sets, named and
// anonymous, about quadratically. kube-proxy's shape loads internal/bench's
// 10,000 services × 5 endpoints (one in seven under affinity: 7,140 named
// sets besides 10,000 anonymous maps) in about 80 s as one transaction
// and 51 s staged, seven times svcnat's iptables-nft apply (about 11 s);
// this one, with five sets and maps in all, loads it in 6.4 s as one
// transaction on a quiet machine (scripts/nftshape) and 8.6 s on one shared
// with other benchmarks (load average 5–9 on 2 CPUs), 31 s staged by
// 2,000 objects (each nft run reads the whole table first, so the
// backend does not stage: nftables.limits); nft lists it whole in 4–5 s
// (quiet) to 7–16 s (shared), the backend's Read 11–12 s (shared); one
// endpoint changes in 0.1–0.2 s. Real connections through it balance and
// stick (scripts/nftshape/func/run.sh).
//
// Chainless ports ("shape D" of scripts/nftshape): a service port whose
// service chain would hold that one plain pick and nothing else, reached
// from its cluster IP's service-ips element alone (Cluster policy, no
// affinity, no node port, external or load-balancer IP, no local chain),
// gets no chain. Its service-ips element, commented with the service
// port's name as no chain names it, goes to a dispatch chain shared by
// every chainless port of its protocol and endpoint count, whose one rule
// picks by the packet's own destination and an index:
//
//	add map ip svcnat vip-endpoints-tcp { typeof ip daddr . tcp dport . numgen random mod 1 : ip daddr . tcp dport ; … }
//	add chain ip svcnat dispatch-tcp-3
//	add rule ip svcnat dispatch-tcp-3 dnat ip addr . port to ip daddr . tcp dport . numgen random mod 3 map @vip-endpoints-tcp
//	add element ip svcnat service-ips { 10.96.2.0 . tcp . 80 comment "ns/web:http" : goto dispatch-tcp-3 }
//	add element ip svcnat vip-endpoints-tcp { 10.96.2.0 . 80 . 0 : 10.64.1.2 . 8080 } (… . 1, … . 2)
//
// nft lists that rule "dnat ip to ip daddr . tcp dport . numgen random
// mod 3 map @vip-endpoints-tcp": the "tcp dport" in the key is the
// protocol match (nft adds "meta l4proto tcp" itself and leaves it out of
// the listing, so it is not written). Why: nf_tables' load time also grows
// with the number of chains, about quadratically: at internal/bench's
// 10,000 services × 5 endpoints the table has 5,559 chains instead of
// 12,415 and loads in 3.2–3.6 s instead of 8.7–11 s (one nft -f, nft
// 1.0.6, 2026-12-07); the listing takes as long (4.5 s), and reloads as
// listed. A chainless port's endpoint-count change changes elements only
// (its service-ips element goes to another dispatch chain), and a
// dispatch chain is made when a port first needs it and goes when the
// last leaves it (Result.Users); a port of n endpoints needs those of 1
// to n rounded up to a power of two (see dispatch), so that one more or
// one fewer seldom makes or drops one. A chainless port keeps its range of the
// endpoints maps, unused, so that the other chains' ranges do not move
// when a port gains or loses its chain.
//
// The numbers (see slots) are derived from names, not positions: a
// chain's range from a hash of its name, an endpoint's affinity slot
// from a hash of kube-proxy's name for its endpoint chain. So a change to
// one service rewrites that service's rule and elements only, not every
// range after it, and a client keeps its affinity to an endpoint while
// the service's other endpoints come and go.
//
// Maps per protocol, not for all: nft 1.0.6 refuses to add a rule naming
// a map typed "th dport" that it reads back from the kernel ("conflicting
// protocols specified: tcp vs. th"), which every plan but a cold load
// does, and a map typed "tcp dport" serves tcp rules only.
//
// What to write for each service port (which endpoints serve which
// traffic, what is on this node, what is rejected or dropped) is decided by
// the service model, package service, which every backend shares; this
// package gives those decisions kube-proxy's nftables names and rules. It
// adds knftables objects to a transaction and nothing else: it never runs
// nft, never reads the kernel and never prints. The transaction builds the
// table from nothing (only adds, in an order whose references always
// resolve: declarations, then rules, then set and map elements, so the
// dispatch maps are filled last); turning it into changes against a live
// table is not this package's work.
//
// Differences from kube-proxy, all deliberate:
//   - Chainless ports, above: no service chain for a plain cluster-IP
//     port; dispatch-PROTO-N chains and the vip-endpoints-tcp, -udp and
//     -sctp maps instead, and the service-ips element carries the
//     service port's name as its comment (kube-proxy's carry none).
//     Measured: the table loads two to three times faster at 10,000
//     services.
//   - The endpoint selection, above: the endpoints-tcp-N, -udp-N and
//     -sctp-N maps and the affinity set instead of an anonymous map per service
//     chain and, under affinity, an endpoint chain and an affinity set per
//     endpoint; the service chain's rules read from them. Measured: it
//     loads seven times faster at 10,000 services. A client's affinity
//     expires as kube-proxy's does (the timeout is per element, refreshed
//     on each new connection); the set holds 1,048,576 (endpoint, client)
//     pairs for the whole table where kube-proxy's hold 65,535 per
//     endpoint.
//   - Services are rendered in name order, ports in name order, endpoints in
//     kube-proxy's byEndpoint (ip:port string) order, so the numgen index of
//     an endpoint within its chain's range is stable; kube-proxy walks Go maps, so its element order
//     changes every sync (its tests compare sorted dumps).
//   - The table's comment is "rules for <table>" ("rules for kube-proxy"
//     with kube-proxy's table name).
//   - Base chain priorities are written as numbers (-110, 0, -100, 100), as
//     knftables writes kube-proxy's named ones: Debian 12's nft 1.0.6
//     refuses "dstnat" in a nat output chain.
//   - The masquerade mark is written as kube-proxy writes it at run time,
//     "%#08x" (0x00004000); its unit tests hard-code "0x4000".
//   - Node ports: an empty node_port_addresses means every local address
//     (kube-proxy's 0.0.0.0/0 and ::/0, "fib daddr type local" and no
//     nodeport-ips set), svcnat's default, where kube-proxy's nftables mode
//     defaults to the node's primary IPs. With addresses, nodeport-ips holds
//     the host's addresses inside them, loopback excepted. There are no
//     localhost node ports in nftables mode, so localhost_node_ports is
//     ignored, as is RandomFully (masquerade is always fully-random).
//   - Unallocated cluster IPs are dropped in cluster-ips-check only when
//     the caller knows the service CIDRs (Options.ServiceCIDRs), as
//     kube-proxy does only when it knows its ServiceCIDRs.
//   - The table is written whole: no stale-chain flushing, no element cache
//     and no add+delete of base chains; those belong to applying it.
//   - A load-balancer source range holding any of the host's addresses
//     (loopback aside) lets the load-balancer IPs in, where kube-proxy
//     looks for its one node IP: svcnat knows no primary address, and its
//     service model decides this for every backend (Port.AllowFromNode).
//   - No topology hints, no localhost node-port userspace proxy
//     (KEP-6032), no load-balancer ingress with ipMode Proxy (svcnat's
//     load_balancer_ips are all VIP mode).
//   - An address:port that two dispatch entries would share (the
//     configuration lets a service's external IP be its cluster IP too)
//     is written once, for the first: the cluster IP, as iptables' rule
//     order has it; kube-proxy would hand nft both, which nft refuses.
package render

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
)

// DefaultTable is the name of svcnat's table in each family.
const DefaultTable = "svcnat"

// Options are the facts about this host that rendering depends on.
type Options struct {
	// RenderOptions are the backend-independent ones: Node decides which
	// endpoints are local; LocalAddresses fill nodeport-ips (with
	// node_port_addresses set) and let load-balancer IPs through their
	// own firewall chain when a source range holds one of them.
	// RandomFully is ignored: nftables masquerades fully-random always.
	backend.RenderOptions
	// Table is the table's name in each family; DefaultTable when empty.
	Table string
	// ServiceCIDRs are the ranges cluster IPs are allocated from, of any
	// family. Traffic to an address inside them that is no cluster IP is
	// dropped (cluster-ips-check). None: no such rule.
	ServiceCIDRs []netip.Prefix
}

// tableNamePattern admits what nft reads as an identifier.
var tableNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]*$`)

// Result says which service each per-service object of a rendered family
// belongs to.
type Result struct {
	// Owner maps every per-service chain to the name of its service
	// (the shared endpoints maps' elements are each chain's by range). Names are hashed, so this index is the way to group
	// objects by service.
	Owner map[string]string
	// Shares are the names each service (by name) numbers in the spaces
	// the table shares (see slots), as backend.Shares spells them.
	Shares map[string]*backend.Shares
	// Users maps each dispatch chain (render.dispatch) and endpoints map
	// (endpointsMap) to the services whose ports go to it or whose chains
	// pick from it: it exists while one does.
	Users map[string][]string
}

// Families returns the families a model has objects in, in svcnat's order:
// IPv4 always (the fixed objects exist without services), IPv6 when some
// service has an IPv6 cluster IP.
func Families(m *service.Model) []backend.Family {
	if m.IPv6 {
		return []backend.Family{backend.IPv4, backend.IPv6}
	}
	return []backend.Family{backend.IPv4}
}

// nftFamily is the knftables family of fam.
func nftFamily(fam backend.Family) knftables.Family {
	if fam == backend.IPv6 {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}

// RenderConfig builds cfg's service model for the host opts describes and
// renders family fam into tx (see Render).
func RenderConfig(tx *knftables.Transaction, cfg *config.Config, fam backend.Family, opts Options) (*Result, error) {
	m := service.Build(cfg, service.Options{Node: opts.Node, LocalAddresses: opts.LocalAddresses})
	return Render(tx, m, &cfg.Settings, fam, opts)
}

// Render adds to tx every object of svcnat's table of family fam for
// model m (built for the same host as opts) and settings s: the table, its
// chains, sets and maps, their rules and elements. Every object names its
// family and table, so tx may come from an Interface for that family and
// table or from one without defaults (knftables.New("", "")). Render adds
// nothing when it fails.
func Render(tx *knftables.Transaction, m *service.Model, s *config.Settings, fam backend.Family, opts Options) (*Result, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if !tableNamePattern.MatchString(opts.Table) || len(opts.Table) > knftables.NameLengthMax {
		return nil, fmt.Errorf("table name %q is not an nftables identifier", opts.Table)
	}
	if s.MasqueradeBit < 0 || s.MasqueradeBit > 31 {
		return nil, fmt.Errorf("masquerade bit %d is outside 0-31", s.MasqueradeBit)
	}
	b := newBuilder(fam, s, opts)
	shares := map[string]*backend.Shares{}
	sps, sl, err := b.servicePorts(m, shares)
	if err != nil {
		return nil, err
	}
	b.slots = sl
	b.fixedObjects()
	for _, sp := range sps {
		b.writeServicePort(sp)
	}
	b.emit(tx)
	return &Result{Owner: b.owner, Shares: shares, Users: b.users}, nil
}

// The spaces of the names backend.Shares holds: a range of the endpoints
// maps, an affinity slot.
const (
	rangeSpace    = "range "
	affinitySpace = "affinity "
)

// servicePorts are the model's service ports of the builder's family, and
// the numbers of their chains' ranges and their endpoints' affinity slots,
// which depend on every service port of the table (see slots): with
// opts.Others, also on the names of the services of the whole
// configuration that are not rendered. shares gets each rendered
// service's names.
func (b *builder) servicePorts(m *service.Model, shares map[string]*backend.Shares) ([]*servicePort, *slots, error) {
	var sps []*servicePort
	var chains, affinityEndpoints []string
	if o := b.opts.Others; o != nil {
		for n := range o.Names[b.fam] {
			if c, ok := strings.CutPrefix(n, rangeSpace); ok {
				chains = append(chains, c)
			} else if e, ok := strings.CutPrefix(n, affinitySpace); ok {
				affinityEndpoints = append(affinityEndpoints, e)
			}
		}
	}
	share := func(svc, name string) {
		sh := shares[svc]
		if sh == nil {
			sh = &backend.Shares{Names: map[backend.Family]map[string]bool{b.fam: {}}}
			shares[svc] = sh
		}
		sh.Names[b.fam][name] = true
	}
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			if !inFamily(b.fam, p.ClusterIP) {
				continue
			}
			sp := b.newServicePort(p)
			sps = append(sps, sp)
			for _, c := range []struct {
				name string
				eps  []service.Endpoint
			}{{sp.serviceChain, sp.Cluster}, {sp.localChain, sp.Local}} {
				if len(c.eps) > MaxEndpointsPerChain {
					return nil, nil, fmt.Errorf("service %s port %d: %d endpoints, more than the %d a chain picks among",
						sp.svc, p.Config.Port, len(c.eps), MaxEndpointsPerChain)
				}
				if len(c.eps) > 0 {
					chains = append(chains, c.name)
					share(sp.svc, rangeSpace+c.name)
				}
			}
			if sp.Service.AffinityTimeout > 0 {
				for _, ep := range sp.Reachable {
					affinityEndpoints = append(affinityEndpoints, sp.epChains[ep.Index])
					share(sp.svc, affinitySpace+sp.epChains[ep.Index])
				}
			}
		}
	}
	newSlots := newSlots
	if b.opts.Others != nil {
		newSlots = cachedSlots // an incremental render, of a few services among the same others
	}
	sl, err := newSlots(chains, affinityEndpoints)
	if err != nil {
		return nil, nil, fmt.Errorf("numbering the %s table's endpoints: %w", b.fam, err)
	}
	return sps, sl, nil
}

// inFamily reports whether a is of the family fam.
func inFamily(fam backend.Family, a netip.Addr) bool { return service.InFamily(fam == backend.IPv6, a) }

// builder accumulates one family's objects in the order they are added:
// declarations (chains, sets, maps), rules, then elements per set or map.
type builder struct {
	fam      backend.Family
	family   knftables.Family
	table    string
	settings *config.Settings
	opts     Options

	ipX      string // "ip" or "ip6", the address match
	addrType string // "ipv4_addr" or "ipv6_addr"
	mark     string // the masquerade mark as kube-proxy writes it
	masqRule string // the statement marking a packet for masquerade
	detect   localDetector
	np       service.NodePortAddresses

	decls []knftables.Object
	rules []*knftables.Rule
	// elems holds the elements of each set and map, in first-added order
	// of their keys, a key added twice kept once; elemOrder is the order
	// of the sets and maps.
	elems     map[string]*elementList
	elemOrder []string
	owner     map[string]string
	slots     *slots
	// declared are the dispatch chains and endpoints maps declared, users
	// the services each serves (in writing order, a service once per
	// port).
	declared map[string]bool
	users    map[string][]string
}

// elementList is one set's or map's elements with their keys seen.
type elementList struct {
	seen  map[string]bool
	elems []*knftables.Element
}

func newBuilder(fam backend.Family, s *config.Settings, opts Options) *builder {
	b := &builder{
		fam:      fam,
		family:   nftFamily(fam),
		table:    opts.Table,
		settings: s,
		opts:     opts,
		ipX:      "ip",
		addrType: "ipv4_addr",
		mark:     fmt.Sprintf("%#08x", uint32(1)<<uint(s.MasqueradeBit)),
		detect:   newLocalDetector(fam, s.ClusterCIDRs),
		np:       service.NodePorts(fam == backend.IPv6, s.NodePortAddresses),
		elems:    map[string]*elementList{},
		owner:    map[string]string{},

		declared: map[string]bool{},
		users:    map[string][]string{},
	}
	if fam == backend.IPv6 {
		b.ipX, b.addrType = "ip6", "ipv6_addr"
	}
	b.masqRule = "mark set mark or " + b.mark
	return b
}

// chain declares a regular chain.
func (b *builder) chain(name string) {
	b.decls = append(b.decls, &knftables.Chain{Family: b.family, Table: b.table, Name: name})
}

// serviceChain declares a per-service chain and records its service.
func (b *builder) serviceChain(name, svc string) {
	b.chain(name)
	b.owner[name] = svc
}

// rule appends a rule of the words of parts (knftables.Concat) to chain,
// with comment when it is not empty.
func (b *builder) rule(chain, comment string, parts ...any) {
	r := &knftables.Rule{Family: b.family, Table: b.table, Chain: chain, Rule: knftables.Concat(parts...)}
	if comment != "" {
		r.Comment = knftables.PtrTo(comment)
	}
	b.rules = append(b.rules, r)
}

// has reports whether the set or map name has an element of key.
func (b *builder) has(name string, key []string) bool {
	l := b.elems[name]
	return l != nil && l.seen[knftables.Concat(key)]
}

// element adds an element to the set or map name (a map's when value is
// not empty), unless its key is there already.
func (b *builder) element(name string, key []string, comment string, value ...string) {
	l := b.elems[name]
	if l == nil {
		l = &elementList{seen: map[string]bool{}}
		b.elems[name] = l
		b.elemOrder = append(b.elemOrder, name)
	}
	k := knftables.Concat(key)
	if l.seen[k] {
		return
	}
	l.seen[k] = true
	e := &knftables.Element{Family: b.family, Table: b.table, Key: key, Value: value}
	if value == nil {
		e.Set = name
	} else {
		e.Map = name
	}
	if comment != "" {
		e.Comment = knftables.PtrTo(comment)
	}
	l.elems = append(l.elems, e)
}

// emit adds everything to tx in an order in which every reference
// resolves: declarations, rules, then elements (knftables reports an
// object it refuses when tx runs).
func (b *builder) emit(tx *knftables.Transaction) {
	for _, o := range b.decls {
		tx.Add(o)
	}
	for _, r := range b.rules {
		tx.Add(r)
	}
	for _, name := range b.elemOrder {
		for _, e := range b.elems[name].elems {
			tx.Add(e)
		}
	}
}
