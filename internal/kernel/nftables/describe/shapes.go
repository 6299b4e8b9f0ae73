package describe

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// The shapes of the rules and elements the renderer writes
// (render/fixed.go, render/service.go), as nft lists them, per object:
// the text with {ipX} for the family's "ip"/"ip6", {lo} for its loopback
// and placeholders for what differs from one configuration to another,
// each of which admits only its own kind of value (placeholders).
// TestCheckDesiredAdmitsWhatRenderWrites holds them to the renderer.
var fixedShapes = map[string][]string{
	"filter-input":               {"ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"},
	"filter-forward":             {"ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"},
	"filter-output":              {"ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"},
	"filter-output-pre-dnat":     {"ct state new jump firewall-check"},
	"filter-prerouting-pre-dnat": {"ct state new jump firewall-check"},
	"nat-output":                 {"jump services"},
	"nat-prerouting":             {"jump services"},
	"nat-postrouting":            {"jump masquerading"},
	"masquerading": {
		"meta mark & {mark} != 0x00000000 meta mark set meta mark ^ {mark} masquerade fully-random",
		"ct status dnat {ipX} saddr . {ipX} daddr . meta l4proto . th dport @hairpin-connections masquerade fully-random",
	},
	"cluster-ips-check": {
		`{ipX} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
		`{ipX} daddr {cidrs} drop comment "Drop traffic to unallocated ClusterIPs"`,
	},
	rejectChain:                {"reject"},
	"service-endpoints-check":  {"{ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services"},
	"nodeport-endpoints-check": {"{ipX} daddr != {lo} meta l4proto . th dport vmap @no-endpoint-nodeports", "{ipX} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"},
	"firewall-check":           {"{ipX} daddr . meta l4proto . th dport vmap @firewall-ips"},
	servicesChain: {
		`{ipX} daddr @cluster-ips meta mark set meta mark | {mark} comment "masquerade all clusterIP traffic"`,
		`{ipX} daddr @cluster-ips {ipX} saddr != {cidr} meta mark set meta mark | {mark} comment "masquerade clusterIP traffic from outside cluster"`,
		"{ipX} daddr . meta l4proto . th dport vmap @service-ips",
		"fib daddr type local {ipX} daddr != {lo} meta l4proto . th dport vmap @service-nodeports",
		"{ipX} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
	},
	clusterIPs:      {"{addr}"},
	nodePortIPs:     {"{addr}"},
	hairpinConns:    {"{addr} . {addr} . {proto} . {port}"},
	serviceIPs:      {"{addr} . {proto} . {port} : goto {dispatch}", `{addr} . {proto} . {port} comment "{spn}" : goto {dispatcher}`},
	serviceNodePort: {"{proto} . {port} : goto {external}"},
	firewallIPs:     {"{addr} . {proto} . {port} : goto {firewall}"},
	noEndpointSvcs:  {`{addr} . {proto} . {port} comment "{spn}" : {noep}`},
	noEndpointNPs:   {`{proto} . {port} comment "{spn}" : {noep}`},
	// a chainless port's endpoint: cluster IP . port . index : endpoint
	"vip-endpoints-tcp":  {"{addr} . {port} . {index} : {addr} . {port}"},
	"vip-endpoints-udp":  {"{addr} . {port} . {index} : {addr} . {port}"},
	"vip-endpoints-sctp": {"{addr} . {port} . {index} : {addr} . {port}"},
	// affinity: nil, filled by the packet path only
}

// The affinity rules' key: the endpoint's slot and the client.
const affinityKey = "numgen random mod 1 offset {slot} . {ipX} saddr"

var serviceShapes = map[objKind][]string{
	svcChain: {
		"meta l4proto {proto} dnat {ipX} to numgen random mod {n} offset {base} map @{epmap}",
		affinityKey + " @affinity update @affinity { " + affinityKey + " timeout {timeout} } meta l4proto {proto} dnat to {addrport}",
		"numgen random mod {n} 0 update @affinity { " + affinityKey + " timeout {timeout} } meta l4proto {proto} dnat to {addrport}",
		"update @affinity { " + affinityKey + " timeout {timeout} } meta l4proto {proto} dnat to {addrport}",
	},
	extChain: {
		`meta mark set meta mark | {mark} comment "masquerade"`,
		"goto {policychain}",
		`{ipX} saddr {cidr} goto {policychain} comment "short-circuit pod traffic"`,
		`fib saddr type local meta mark set meta mark | {mark} comment "masquerade local traffic"`,
		`fib saddr type local goto {policychain} comment "short-circuit local traffic"`,
	},
	fwChain: {"{ipX} saddr != {cidrs} drop"},
}

func init() { serviceShapes[localChain] = serviceShapes[svcChain] }

// dispatchShapes are a dispatch chain's (dispatchOf): one rule, of the
// chain's protocol and endpoint count.
var dispatchShapes = []string{"dnat {ipX} to {ipX} daddr . {proto} dport . numgen random mod {n} map @{vipmap}"}

// endpointsMapShapes are an endpoints map's elements: a key of a chain's
// range and the endpoint.
var endpointsMapShapes = []string{"{key} : {addr} . {port}"}

// shapesOf are the shapes of o's rules or elements.
func (c *checker) shapesOf(o *backend.Chain) []string {
	if _, _, ok := dispatchOf(o.Name); ok {
		return dispatchShapes
	}
	if k, _ := perService(o.Name); k != notPerService {
		return serviceShapes[k]
	}
	if _, ok := endpointsMapOf(o.Name); ok {
		return endpointsMapShapes
	}
	return fixedShapes[o.Name]
}

// placeholders are what each placeholder matches, before its check.
var placeholders = map[string]string{
	"addr": `([0-9a-fA-F.:]+)`, "cidr": `([0-9a-fA-F.:/]+)`, "cidrs": `(\{ [0-9a-fA-F.:/, -]+ \}|[0-9a-fA-F.:/-]+)`,
	"proto": `(tcp|udp|sctp)`, "port": `([0-9]+)`, "n": `([0-9]+)`, "mark": `(0x[0-9a-f]{8})`,
	"spn": `([a-z0-9./:-]+)`, "noep": `(goto reject-chain|drop)`,
	"addrport": `(\S+)`, "dispatch": `(\S+)`, "external": `(\S+)`, "firewall": `(\S+)`, "policychain": `(\S+)`,
	"key": `([0-9]+)`, "index": `([0-9]+)`, "dispatcher": `(\S+)`, "vipmap": `(\S+)`, "base": `([0-9]+)`, "slot": `([0-9]+)`, "epmap": `(\S+)`,
	"timeout": `((?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?)`,
}

var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

// compiled is a shape as a regular expression and its placeholders in
// order.
type compiled struct {
	re    *regexp.Regexp
	names []string
}

var shapeCache sync.Map // family "ip"/"ip6" + "\x00" + shape → *compiled

func compile(ipX, shape string) *compiled {
	key := ipX + "\x00" + shape
	if v, ok := shapeCache.Load(key); ok {
		return v.(*compiled)
	}
	lo := "127.0.0.0/8"
	if ipX == "ip6" {
		lo = "::1"
	}
	s := strings.NewReplacer("{ipX}", ipX, "{lo}", lo).Replace(shape)
	out := &compiled{}
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, loc := range placeholder.FindAllStringIndex(s, -1) {
		name := s[loc[0]+1 : loc[1]-1]
		b.WriteString(regexp.QuoteMeta(s[last:loc[0]]))
		b.WriteString(placeholders[name])
		out.names = append(out.names, name)
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(s[last:]) + "$")
	out.re = regexp.MustCompile(b.String())
	shapeCache.Store(key, out)
	return out
}

// match says why text may not be a rule or element of o, or "".
func (c *checker) match(o *backend.Chain, shapes []string, text string) string {
	if len(shapes) == 0 {
		return fmt.Sprintf("svcnat writes nothing in %s", o.Name)
	}
	first := ""
	for _, sh := range shapes {
		cs := compile(c.ipX, sh)
		m := cs.re.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		reason := c.values(o, cs.names, m[1:])
		if reason == "" {
			return ""
		}
		if first == "" {
			first = reason
		}
	}
	if first != "" {
		return first
	}
	return fmt.Sprintf("svcnat writes in %s only: %s", o.Name, strings.Join(shapes, "; "))
}

// values checks the values of a matched shape's placeholders.
func (c *checker) values(o *backend.Chain, names, vals []string) string {
	_, base := perService(o.Name)
	n := -1
	proto, slot, rangeBase := "", "", ""
	for i, name := range names {
		v := vals[i]
		reason := ""
		switch name {
		case "addr":
			reason = c.addr(v)
		case "cidr":
			reason = c.prefix(v)
		case "cidrs":
			for _, p := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(v, "{ "), " }"), ", ") {
				if reason = c.prefix(p); reason != "" {
					break
				}
			}
		case "port":
			if !isPort(v) {
				reason = fmt.Sprintf("%s is no port", v)
			}
		case "proto":
			if proto != "" && v != proto {
				reason = fmt.Sprintf("one rule speaks of one protocol, not %s and %s", proto, v)
			}
			proto = v
		case "key":
			reason = uint32OK(v, 0)
		case "base":
			// The range base … base+n-1 is within numgen's 32 bits.
			reason = uint32OK(v, n-1)
			rangeBase = v
		case "slot":
			if slot != "" && v != slot {
				reason = "an affinity rule looks up and records one endpoint's slot"
			}
			slot = v
			reason = cmp.Or(reason, uint32OK(v, 0))
		case "index":
			if k, err := strconv.Atoi(v); err != nil || k < 0 || k >= maxRange || strconv.Itoa(k) != v {
				reason = fmt.Sprintf("%s is no endpoint index", v)
			}
		case "vipmap":
			dp, dn, _ := dispatchOf(o.Name)
			if v != vipEndpointsPrefix+proto || dp != proto || dn != n {
				reason = fmt.Sprintf("%s picks one of %d %s endpoints from %s%s", o.Name, dn, dp, vipEndpointsPrefix, dp)
			}
		case "dispatcher":
			dp, _, ok := dispatchOf(v)
			switch {
			case !ok || dp != proto:
				reason = fmt.Sprintf("a %s port goes to a dispatch chain of %s, not %s", proto, proto, v)
			case c.t.Chain(v) == nil:
				reason = fmt.Sprintf("%s is not in the plan", v)
			}
		case "epmap":
			b, err := strconv.ParseUint(rangeBase, 10, 32)
			switch p, ok := endpointsMapOf(v); {
			case !ok || p != proto:
				reason = fmt.Sprintf("a %s rule picks from an endpoints map of %s (%s%s-N)", proto, proto, endpointsMapPrefix, proto)
			case err == nil && v != render.EndpointsMap(proto, uint32(b)):
				reason = fmt.Sprintf("the range at %s is in %s, not %s", rangeBase, render.EndpointsMap(proto, uint32(b)), v)
			}
		case "timeout":
			if v == "" {
				reason = "an affinity timeout is not zero"
			}
		case "n":
			n, _ = strconv.Atoi(v)
			if n < 1 || strconv.Itoa(n) != v {
				reason = fmt.Sprintf("numgen mod %s", v)
			}
		case "mark":
			reason = c.markOK(v)
		case "addrport":
			ap, err := netip.ParseAddrPort(v)
			if err != nil || ap.Port() == 0 {
				reason = fmt.Sprintf("svcnat DNATs only to an endpoint address:port, not %s", v)
			} else {
				reason = c.addr(ap.Addr().String())
			}
		case "dispatch":
			reason = c.target(v, svcChain, localChain, extChain)
		case "external":
			reason = c.target(v, extChain)
		case "firewall":
			reason = c.target(v, fwChain)
		case "policychain":
			if v != "service-"+base && v != "local-"+base {
				reason = "an external chain goes only to its own service's service or local chain"
			} else {
				reason = c.target(v, svcChain, localChain)
			}
		}
		if reason != "" {
			return reason
		}
	}
	return ""
}

func (c *checker) addr(v string) string {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Is6() != (c.fam == backend.IPv6) || a.Zone() != "" || a.Is4In6() {
		return fmt.Sprintf("%s is not an %s address", v, c.fam)
	}
	// Every address an element or a dnat names is a service's or an
	// endpoint's (or nodeport-ips', loopback excepted), which config
	// refuses to be any of these: no DNAT to one works.
	if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		return fmt.Sprintf("svcnat never sends service traffic to or from %s", v)
	}
	return ""
}

func (c *checker) prefix(v string) string {
	if lo, hi, ok := strings.Cut(v, "-"); ok {
		// A stretch of a firewall's sources that is no prefix (render's
		// sourceSet).
		l, err1 := netip.ParseAddr(lo)
		h, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || l.Is6() != (c.fam == backend.IPv6) || h.Is6() != l.Is6() || l.Compare(h) >= 0 {
			return fmt.Sprintf("%s is not an %s address range", v, c.fam)
		}
		return ""
	}
	if !strings.Contains(v, "/") {
		return c.addr(v)
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || p.Addr().Is6() != (c.fam == backend.IPv6) || p.Masked() != p {
		return fmt.Sprintf("%s is not an %s prefix", v, c.fam)
	}
	return ""
}

// markOK admits the masquerade mark, one bit, the same in every rule.
func (c *checker) markOK(v string) string {
	m, err := strconv.ParseUint(v[2:], 16, 32)
	if err != nil || bits.OnesCount64(m) != 1 {
		return fmt.Sprintf("svcnat's masquerade mark is one bit, not %s", v)
	}
	if *c.mark != "" && *c.mark != v {
		return fmt.Sprintf("svcnat writes one masquerade mark in every rule: %s here, %s before", v, *c.mark)
	}
	*c.mark = v
	return ""
}

// uint32OK says why v plus more is not a 32-bit number (numgen's), or "".
func uint32OK(v string, more int) string {
	k, err := strconv.ParseUint(v, 10, 32)
	if err != nil || strconv.FormatUint(k, 10) != v || more < 0 || k+uint64(more) > 1<<32-1 {
		return fmt.Sprintf("%s is outside numgen's 32 bits", v)
	}
	return ""
}

// target admits a per-service object of one of kinds that the table
// declares.
func (c *checker) target(name string, kinds ...objKind) string {
	k, _ := perService(name)
	ok := false
	for _, want := range kinds {
		ok = ok || k == want
	}
	if !ok {
		return fmt.Sprintf("svcnat does not send there: %s", name)
	}
	if c.t.Chain(name) == nil {
		return fmt.Sprintf("%s is not in the plan", name)
	}
	return ""
}
