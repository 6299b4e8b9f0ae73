package describe

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// index says, for one family, which service each object and element of a
// plan's desired and live tables serves. Per-service objects say it in
// their names; the renderer says it for the objects it made
// (Planned.ChainService), which also covers names nft's length limit cut
// ("…"), by their base; an endpoint chain or affinity set whose name was
// cut is its service chain's. Elements of the shared maps say it through
// the chain their verdict names, or by their key; an endpoints map's
// element through the service or local chain whose range holds its key
// ("numgen random mod N offset K map @endpoints-P" holds K … K+N-1).
type index struct {
	tables       []*backend.Table // desired, live (either may be nil)
	chainService map[string]string
	byBase       map[string]string // base of a cut name → service, from chainService
	referred     map[string]string // endpoint chain or affinity set → service, built when needed
	byKey        map[string]string // "ip . proto . port" and "proto . port" → service
	clusterIP    map[string]string // cluster IP → service
	firewalled   map[string]bool   // keys of firewall-ips
	dispatched   [2]map[string]bool
	// Per table: an endpoints map's key → the chain whose range holds
	// it, and each endpoints map's elements, key → "ip . port".
	ranges  [2]map[uint64]string
	epElems [2]map[string]map[uint64]string
	// Per table, for chainless ports: a service-ips key "ip . proto .
	// port" going to a dispatch chain → the base its service chain would
	// have (render.PortNameBase, from the element's comment; "vip KEY"
	// when the comment was cut), the other way, and each key's endpoints
	// in the vip-endpoints maps ("ip:port", by index).
	vipBase  [2]map[string]string
	vipKey   [2]map[string]string
	vipElems [2]map[string]map[uint64]string
	targets  [2]map[string]string // service-ips key → its verdict's chain
}

// rangeRule is a service or local chain's pick in its range of an
// endpoints map.
var rangeRule = regexp.MustCompile(`numgen random mod ([0-9]+) offset ([0-9]+) map @(endpoints-[a-z]+-[0-9]+)$`)

// maxRange bounds the range read from one rule: the renderer's chains
// hold at most 65,536 endpoints, and a hand-edited live table is no reason
// to loop for long.
const maxRange = 1 << 16

// rangeOf reads a rule's range: the map, its first key and how many.
func rangeOf(rule string) (m string, base, n uint64, ok bool) {
	r := rangeRule.FindStringSubmatch(rule)
	if r == nil {
		return "", 0, 0, false
	}
	n, err1 := strconv.ParseUint(r[1], 10, 32)
	base, err2 := strconv.ParseUint(r[2], 10, 32)
	if err1 != nil || err2 != nil || n == 0 || n > maxRange || base+n-1 > 1<<32-1 {
		return "", 0, 0, false
	}
	return r[3], base, n, true
}

// indexRanges indexes the endpoints maps' elements and the ranges of the
// service and local chains of table i.
func (x *index) indexRanges(i int, t *backend.Table) {
	x.ranges[i], x.epElems[i] = map[uint64]string{}, map[string]map[uint64]string{}
	x.vipElems[i] = map[string]map[uint64]string{}
	for _, c := range t.Chains {
		switch k, _ := perService(c.Name); {
		case c.Kind != backend.KindChain && isEndpointsMap(c.Name):
			elems := map[uint64]string{}
			for _, r := range c.Rules {
				e := parseElement(r.Text())
				if key, err := strconv.ParseUint(e.keyString(), 10, 32); err == nil {
					elems[key] = e.verdict
				}
			}
			x.epElems[i][c.Name] = elems
		case c.Kind != backend.KindChain && strings.HasPrefix(c.Name, vipEndpointsPrefix):
			proto := strings.TrimPrefix(c.Name, vipEndpointsPrefix)
			for _, r := range c.Rules {
				e := parseElement(r.Text())
				if len(e.key) != 3 {
					continue
				}
				idx, err := strconv.ParseUint(e.key[2], 10, 32)
				if err != nil {
					continue
				}
				k := e.key[0] + " . " + proto + " . " + e.key[1]
				if x.vipElems[i][k] == nil {
					x.vipElems[i][k] = map[uint64]string{}
				}
				x.vipElems[i][k][idx] = e.verdict
			}
		case k == svcChain || k == localChain:
			for _, r := range c.Rules {
				if _, base, n, ok := rangeOf(r.Text()); ok {
					for key := base; key < base+n; key++ {
						x.ranges[i][key] = c.Name
					}
				}
			}
		}
	}
}

// rangeChain is the service or local chain whose range holds key in the
// desired table (first, when desired) or the live one.
func (x *index) rangeChain(key uint64, desiredFirst bool) string {
	order := []int{1, 0}
	if desiredFirst {
		order = []int{0, 1}
	}
	for _, i := range order {
		if c := x.ranges[i][key]; c != "" {
			return c
		}
	}
	return ""
}

// rangeEndpoints are the endpoints ("ip:port") of a rule's range in
// table i, in key order; nil for a rule without one.
func (x *index) rangeEndpoints(i int, rule string) []string {
	m, base, n, ok := rangeOf(rule)
	if !ok {
		return nil
	}
	var out []string
	for key := base; key < base+n; key++ {
		if a, ok := addrDotPort(x.epElems[i][m][key]); ok {
			out = append(out, a)
		}
	}
	return out
}

// newIndex indexes the desired and the live table (either may be nil).
func newIndex(desired, live *backend.Table, chainService map[string]string) *index {
	x := &index{tables: []*backend.Table{desired, live}, chainService: chainService,
		byKey: map[string]string{}, clusterIP: map[string]string{}, firewalled: map[string]bool{}}
	for name, svc := range chainService {
		if _, base := perService(name); strings.HasSuffix(base, "...") {
			if x.byBase == nil {
				x.byBase = map[string]string{}
			}
			x.byBase[base] = svc
		}
	}
	for i, t := range x.tables {
		x.dispatched[i] = map[string]bool{}
		x.vipBase[i], x.vipKey[i], x.targets[i] = map[string]string{}, map[string]string{}, map[string]string{}
		if t == nil {
			continue
		}
		x.indexRanges(i, t)
		clusters := map[string]bool{}
		if c := t.Chain(clusterIPs); c != nil {
			for _, r := range c.Rules {
				clusters[r.Text()] = true
			}
		}
		for _, m := range []string{serviceIPs, serviceNodePort, firewallIPs, noEndpointSvcs, noEndpointNPs} {
			c := t.Chain(m)
			if c == nil {
				continue
			}
			for _, r := range c.Rules {
				e := parseElement(r.Text())
				svc := x.elementService(m, e)
				k := e.keyString()
				switch {
				case m == firewallIPs:
					x.firewalled[k] = true
				case m == serviceIPs:
					x.dispatched[i][k] = true
					x.targets[i][k] = e.target()
					if isDispatch(e.target()) {
						b := chainlessBase(e)
						x.vipBase[i][k], x.vipKey[i][b] = b, k
					}
				}
				if svc == "" {
					continue
				}
				if x.byKey[k] == "" {
					x.byKey[k] = svc
				}
				if len(e.key) == 3 && clusters[e.key[0]] && x.clusterIP[e.key[0]] == "" {
					x.clusterIP[e.key[0]] = svc
				}
			}
		}
	}
	return x
}

// internal reports whether service-ips key k goes to a chainless port's
// dispatch chain in the desired or the live table, and to it or a
// service chain in the other: the same cluster IP, served either way.
func (x *index) internal(k string) bool {
	d, l := x.targets[0][k], x.targets[1][k]
	if d == "" || l == "" || !isDispatch(d) && !isDispatch(l) {
		return false
	}
	served := func(t string) bool {
		kind, _ := perService(t)
		return isDispatch(t) || kind == svcChain
	}
	return served(d) && served(l)
}

// dispatchUsers are the services whose service-ips elements go to the
// dispatch chain in table i, sorted.
func (x *index) dispatchUsers(i int, chain string) []string {
	seen := map[string]bool{}
	for k, t := range x.targets[i] {
		if t == chain && x.byKey[k] != "" {
			seen[x.byKey[k]] = true
		}
	}
	return sortedKeys(seen)
}

// isDispatch reports whether a service-ips verdict's chain is a dispatch
// chain (a chainless port's).
func isDispatch(chain string) bool {
	_, _, ok := dispatchOf(chain)
	return ok
}

// chainlessBase is the base of the chains a chainless port's service-ips
// element e would go to with chains: from its comment, the service
// port's name ("ns/name:port"), and its key's protocol; "vip KEY" when
// the comment cannot tell (cut by nft's limit).
func chainlessBase(e element) string {
	svc := serviceOfComment(e.comment)
	if svc == "" || len(e.key) != 3 {
		return "vip " + e.keyString()
	}
	_, port, _ := strings.Cut(e.comment, ":")
	return render.PortNameBase(svc, e.key[1], port)
}

// vipService is the service of a vip-endpoints element of map m: the
// service whose service-ips element has its address and port.
func (x *index) vipService(m string, e element) string {
	proto, ok := strings.CutPrefix(m, vipEndpointsPrefix)
	if !ok || len(e.key) != 3 {
		return ""
	}
	return x.byKey[e.key[0]+" . "+proto+" . "+e.key[1]]
}

// vipBaseOf is the base of the chainless port a vip-endpoints element of
// map m belongs to in the desired table (first, when desired) or the
// live one, "" when neither dispatches its address and port.
func (x *index) vipBaseOf(m string, e element, desiredFirst bool) string {
	proto, ok := strings.CutPrefix(m, vipEndpointsPrefix)
	if !ok || len(e.key) != 3 {
		return ""
	}
	k := e.key[0] + " . " + proto + " . " + e.key[1]
	order := []int{1, 0}
	if desiredFirst {
		order = []int{0, 1}
	}
	for _, i := range order {
		if b := x.vipBase[i][k]; b != "" {
			return b
		}
	}
	return ""
}

// objectService is the service of a per-service object, "" for a fixed
// one or one whose service cannot be told.
func (x *index) objectService(name string) string {
	if svc := x.chainService[name]; svc != "" {
		return svc
	}
	kind, base := perService(name)
	if kind == notPerService {
		return ""
	}
	if svc, _, _, ok := portOfBase(base); ok {
		return svc
	}
	if svc := x.byBase[base]; svc != "" {
		return svc
	}
	if kind == epChain || kind == affinitySet {
		return x.referrer(name)
	}
	return ""
}

// referrer is the service of the service or local chain that names an
// endpoint chain or affinity set.
func (x *index) referrer(name string) string {
	if x.referred == nil {
		x.referred = map[string]string{}
		for _, t := range x.tables {
			if t == nil {
				continue
			}
			for _, c := range t.Chains {
				if k, _ := perService(c.Name); k != svcChain && k != localChain {
					continue
				}
				svc := x.objectService(c.Name)
				for _, r := range c.Rules {
					for _, w := range strings.Fields(r.Text()) {
						w = strings.TrimRight(strings.TrimPrefix(w, "@"), ",")
						if k, _ := perService(w); (k == epChain || k == affinitySet) && svc != "" {
							x.referred[w] = svc
						}
					}
				}
			}
		}
	}
	return x.referred[name]
}

// elementService is the service an element of the shared set or map m
// serves, "" for none (nodeport-ips) or when it cannot be told.
func (x *index) elementService(m string, e element) string {
	switch m {
	case serviceIPs, serviceNodePort, firewallIPs:
		if isDispatch(e.target()) {
			// A chainless port's element names its service: no chain does.
			if svc := serviceOfComment(e.comment); svc != "" {
				return svc
			}
			return x.byKey[e.keyString()]
		}
		return x.objectService(e.target())
	case noEndpointSvcs, noEndpointNPs:
		if svc := serviceOfComment(e.comment); svc != "" {
			return svc
		}
		return x.byKey[e.keyString()]
	case clusterIPs:
		return x.clusterIP[e.keyString()]
	}
	if strings.HasPrefix(m, vipEndpointsPrefix) {
		return x.vipService(m, e)
	}
	if isEndpointsMap(m) {
		if key, err := strconv.ParseUint(e.keyString(), 10, 32); err == nil {
			return x.objectService(x.rangeChain(key, true))
		}
	}
	return ""
}

// services adds to out every service with objects or dispatch entries in
// t: the per-service objects' and the no-endpoint maps' (a service
// without endpoints has nothing else).
func (x *index) services(out map[string]bool, t *backend.Table) {
	if t == nil {
		return
	}
	for _, c := range t.Chains {
		if svc := x.objectService(c.Name); svc != "" {
			out[svc] = true
			continue
		}
		if c.Name != noEndpointSvcs && c.Name != noEndpointNPs && c.Name != serviceIPs {
			continue
		}
		for _, r := range c.Rules {
			e := parseElement(r.Text())
			if c.Name == serviceIPs && !isDispatch(e.target()) {
				continue // a chain's, whose service has it
			}
			if svc := x.elementService(c.Name, e); svc != "" {
				out[svc] = true
			}
		}
	}
}

// endpoints are the endpoints ("ip:port", "[ip]:port") the service and
// local chains of base DNAT to in table i: their range of an endpoints
// map and their affinity rules' DNATs; or, in a table an earlier svcnat
// wrote (kube-proxy's own shape), their numgen maps' entries, or with
// affinity, the endpoint chains their verdict maps go to.
func (x *index) endpoints(i int, base string) map[string]bool {
	out := map[string]bool{}
	t := x.tables[i]
	if t == nil {
		return out
	}
	for _, a := range x.vipEndpoints(i, x.vipKey[i][base]) {
		out[a] = true
	}
	for _, name := range []string{"service-" + base, "local-" + base} {
		c := t.Chain(name)
		if c == nil {
			continue
		}
		for _, r := range c.Rules {
			for _, a := range x.rangeEndpoints(i, r.Text()) {
				out[a] = true
			}
			if a, ok := dnatTo(r.Text()); ok {
				out[a] = true
			}
			for _, v := range mapValues(r.Text()) {
				if ep, ok := strings.CutPrefix(v, "goto "); ok {
					if ec := t.Chain(ep); ec != nil {
						for _, er := range ec.Rules {
							if a, ok := dnatTo(er.Text()); ok {
								out[a] = true
							}
						}
					}
					continue
				}
				if a, ok := addrDotPort(v); ok {
					out[a] = true
				}
			}
		}
	}
	return out
}

// vipEndpoints are the endpoints ("ip:port") of the chainless port of
// service-ips key k ("ip . proto . port") in table i, by index.
func (x *index) vipEndpoints(i int, k string) []string {
	elems := x.vipElems[i][k]
	var out []string
	for idx := uint64(0); idx < uint64(len(elems)); idx++ {
		if a, ok := addrDotPort(elems[idx]); ok {
			out = append(out, a)
		}
	}
	return out
}

// mapValues are the values of the anonymous map or verdict map a rule
// ends with ("… map { 0 : 10.1.0.1 . 80, 1 : … }").
func mapValues(rule string) []string {
	i := strings.Index(rule, "map { ")
	if i < 0 || !strings.HasSuffix(rule, " }") {
		return nil
	}
	var out []string
	for _, entry := range strings.Split(rule[i+len("map { "):len(rule)-2], ", ") {
		if _, v, ok := strings.Cut(entry, " : "); ok {
			out = append(out, v)
		}
	}
	return out
}

// addrDotPort reads "ip . port" as "ip:port" ("[ip]:port").
func addrDotPort(v string) (string, bool) {
	ip, port, ok := strings.Cut(v, " . ")
	a, err := netip.ParseAddr(ip)
	if !ok || err != nil || !isPort(port) {
		return "", false
	}
	n, _ := strconv.Atoi(port)
	return netip.AddrPortFrom(a, uint16(n)).String(), true
}

// dnatTo is the endpoint of an endpoint chain's "meta l4proto P dnat to
// ip:port".
func dnatTo(rule string) (string, bool) {
	i := strings.Index(rule, " dnat to ")
	if i < 0 {
		return "", false
	}
	ap, err := netip.ParseAddrPort(rule[i+len(" dnat to "):])
	if err != nil {
		return "", false
	}
	return ap.String(), true
}
