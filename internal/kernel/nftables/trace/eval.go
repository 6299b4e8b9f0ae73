package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// branch is one way a rule can go for a state: it did not match (the
// next rule runs), or it matched and ends with v ("" when it has no
// verdict and the next rule runs; "nat" after dnat, snat or masquerade,
// which accept the packet for the base chain).
type branch struct {
	s       *state
	matched bool
	v       verdict
}

// evalRule evaluates rule r of chain c on s. A rule it cannot read or
// evaluate is recorded on s and taken as not matching.
func (t *tracer) evalRule(s *state, c *backend.Chain, r backend.Rule) []branch {
	ops, err := parseRule(r.Text())
	if err != nil {
		s.notEvaluated(t, r, err.Error())
		return []branch{{s: s}}
	}
	return t.run(s, c, r, ops)
}

// run evaluates ops in order on s.
func (t *tracer) run(s *state, c *backend.Chain, r backend.Rule, ops []op) []branch {
	unknown := func(err error) []branch {
		s.notEvaluated(t, r, err.Error())
		return []branch{{s: s}}
	}
	for i, o := range ops {
		switch o.kind {
		case opMatch:
			ok, err := o.match(t, s)
			if err != nil {
				return unknown(err)
			}
			if !ok {
				return []branch{{s: s}}
			}
		case opLookup:
			in, cond, err := t.lookup(s, o)
			if err != nil {
				return unknown(err)
			}
			if cond != "" {
				cond = conditionOf(cond, ops[i+1:])
				if s.condition != "" {
					// Affinity is checked once: a path that already
					// has a condition does not meet another.
					return []branch{{s: s}}
				}
				yes := s.clone()
				yes.condition = cond
				return append(t.run(yes, c, r, ops[i+1:]), branch{s: s})
			}
			if !in {
				return []branch{{s: s}}
			}
		case opVmap:
			el, found, err := t.find(s, o)
			if err != nil {
				return unknown(err)
			}
			if !found {
				return []branch{{s: s}}
			}
			v, err := verdictOf(el.value)
			if err != nil {
				return unknown(err)
			}
			if v.kind == "goto" && strings.HasPrefix(v.chain, "dispatch-") {
				v.via = el.comment
			}
			return []branch{{s: s, matched: true, v: v}}
		case opNumgenVmap:
			bs, err := t.numgen(s, o)
			if err != nil {
				return unknown(err)
			}
			var out []branch
			for _, b := range bs {
				if b.el == nil {
					out = append(out, branch{s: b.s}) // no element: the lookup fails
					continue
				}
				v, err := verdictOf(b.el.value)
				if err != nil {
					return unknown(err)
				}
				out = append(out, branch{s: b.s, matched: true, v: v})
			}
			return out
		case opNumgenMatch:
			// Matched with probability 1/N: the rest of the rule runs
			// on that share, the next rule on the others.
			yes, no := s.clone(), s.clone()
			yes.prob = s.prob / float64(o.mod)
			no.prob = s.prob - yes.prob
			return append(t.run(yes, c, r, ops[i+1:]), branch{s: no})
		case opMarkSet:
			s.setMark(o.markOp, o.markVal, t.masqMark)
		case opUpdate:
			s.recorded = append(s.recorded, "@"+o.set)
		case opDNAT:
			return t.dnat(s, c, r, o)
		case opSNAT:
			s.masquerade = o.to
			s.hops[len(s.hops)-1].End = "snat to " + o.to
			return []branch{{s: s, matched: true, v: verdict{kind: "nat"}}}
		case opMasquerade:
			s.masquerade = "the node's address toward " + s.dst.String()
			s.hops[len(s.hops)-1].End = "masquerade"
			return []branch{{s: s, matched: true, v: verdict{kind: "nat"}}}
		case opVerdict:
			return []branch{{s: s, matched: true, v: o.verdict}}
		}
	}
	return []branch{{s: s, matched: true}}
}

func (s *state) setMark(opr byte, v, masq uint32) {
	before := s.mark
	switch opr {
	case '=':
		s.mark = v
	case '|':
		s.mark |= v
	case '^':
		s.mark ^= v
	case '&':
		s.mark &= v
	}
	// The bit the masquerading rule tests asks postrouting to masquerade;
	// postrouting clears it again, so remember that it was set.
	if masq != 0 && before&masq == 0 && s.mark&masq != 0 {
		s.marked = true
	}
}

// numgenBranch is one numgen outcome: its state (with its share of the
// probability) and the element it selects, nil when there is none.
type numgenBranch struct {
	s  *state
	el *element
}

// numgen splits s into numgen random mod N's outcomes (offset K … K+N-1),
// each with probability 1/N of s's, looked up in o's anonymous map or
// named map.
func (t *tracer) numgen(s *state, o op) ([]numgenBranch, error) {
	picks, err := t.picks(s, o)
	if err != nil {
		return nil, err
	}
	var out []numgenBranch
	for _, el := range picks {
		b := numgenBranch{s: s.clone(), el: el}
		b.s.prob = s.prob / float64(o.mod)
		out = append(out, b)
	}
	return out, nil
}

// picks are the elements numgen's outcomes select from o's anonymous or
// named map, nil for an outcome without one. A keyed map's (o.key) are
// those whose key holds s's values (nil s: any), then the pick.
func (t *tracer) picks(s *state, o op) ([]*element, error) {
	elems := o.elems
	if o.set != "" {
		var err error
		if elems, err = t.elements(o.set); err != nil {
			return nil, err
		}
	}
	byKey := make(map[string]*element, len(elems))
	for i := range elems {
		el := &elems[i]
		if len(el.key) != len(o.key)+1 {
			return nil, fmt.Errorf("@%s element %q: want %d parts", o.set, strings.Join(el.key, " . "), len(o.key)+1)
		}
		if s != nil {
			all := true
			for j, sel := range o.key {
				m, err := component(sel, el.key[j], s.value(sel))
				if err != nil {
					return nil, err
				}
				all = all && m
			}
			if !all {
				continue
			}
		}
		if k := el.key[len(o.key)]; byKey[k] == nil {
			byKey[k] = el
		}
	}
	out := make([]*element, o.mod)
	for n := range out {
		out[n] = byKey[strconv.Itoa(n+o.offset)]
	}
	return out, nil
}

// dnat applies a dnat statement: to one address, or to what numgen picks
// from an anonymous or named map of "address . port" (an endpoints map's
// range: a key without an element fails the rule, as in the kernel).
func (t *tracer) dnat(s *state, c *backend.Chain, r backend.Rule, o op) []branch {
	apply := func(s *state, to string) branch {
		ap, err := parseDest(to, s.dport)
		if err != nil {
			s.notEvaluated(t, r, err.Error())
			return branch{s: s}
		}
		s.dst, s.dport, s.dnat = ap.Addr(), int(ap.Port()), true
		s.decided = t.decision(c, r)
		s.hops[len(s.hops)-1].End = "DNAT " + ap.String()
		return branch{s: s, matched: true, v: verdict{kind: "nat"}}
	}
	if o.to != "" {
		return []branch{apply(s, o.to)}
	}
	bs, err := t.numgen(s, o)
	if err != nil {
		s.notEvaluated(t, r, err.Error())
		return []branch{{s: s}}
	}
	var out []branch
	for _, b := range bs {
		if b.el == nil {
			out = append(out, branch{s: b.s})
			continue
		}
		out = append(out, apply(b.s, strings.ReplaceAll(b.el.value, " . ", " ")))
	}
	return out
}

// parseDest reads a dnat target: "a.b.c.d", "a.b.c.d:port", "[v6]:port",
// a bare IPv6 address, or "addr port" (a map's "addr . port").
func parseDest(v string, port int) (netip.AddrPort, error) {
	if a, p, ok := strings.Cut(v, " "); ok {
		ip, err1 := netip.ParseAddr(a)
		n, err2 := strconv.Atoi(p)
		if err1 != nil || err2 != nil {
			return netip.AddrPort{}, fmt.Errorf("dnat target %q", v)
		}
		return netip.AddrPortFrom(ip, uint16(n)), nil
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(v, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dnat target %q", v)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// lookup evaluates a set lookup or comparison. cond is set when the
// answer depends on what the packet path recorded before (a dynamic set
// such as an affinity set): then the rule matches only on that
// condition.
func (t *tracer) lookup(s *state, o op) (in bool, cond string, err error) {
	_, found, err := t.find(s, o)
	if err != nil {
		return false, "", err
	}
	if found || o.set == "" {
		return found != o.neg, "", nil
	}
	set := t.object(o.set)
	if dynamic(set) && !o.neg {
		return false, affinityCondition(set), nil
	}
	return o.neg, "", nil
}

// dynamic reports whether the packet path adds to the set (update or add
// from a rule): what it holds depends on earlier packets.
func dynamic(set *backend.Chain) bool {
	return set != nil && strings.Contains(set.Policy, "dynamic")
}

// conditionOf completes the condition of a lookup in the shared affinity
// set, keyed by an endpoint's slot: the rest of the rule names the
// endpoint (its dnat) and how long a client is kept (its update's
// timeout).
func conditionOf(cond string, rest []op) string {
	if cond != sharedAffinity {
		return cond
	}
	to, timeout := "", ""
	for _, o := range rest {
		switch {
		case o.kind == opDNAT && o.to != "":
			to = o.to
		case o.kind == opUpdate && o.timeout != "":
			timeout = o.timeout
		}
	}
	if to == "" {
		return "the client is in @affinity"
	}
	cond = "the client has affinity to " + to
	if timeout != "" {
		cond += ", recorded within " + timeout
	}
	return cond
}

// sharedAffinity is the condition of a lookup in svcnat's affinity set
// before conditionOf names the endpoint.
const sharedAffinity = "the client has affinity (@affinity)"

// affinityCondition says what a match of a dynamic set stands for.
func affinityCondition(set *backend.Chain) string {
	if set.Name == "affinity" {
		return sharedAffinity
	}
	c := "the client is in @" + set.Name
	if strings.HasPrefix(set.Name, "affinity-") {
		c = "the client has affinity to " + strings.TrimPrefix(set.Name, "affinity-")
	}
	for _, stmt := range strings.Split(set.Policy, ";") {
		if f := strings.Fields(stmt); len(f) == 2 && f[0] == "timeout" {
			c += ", recorded within " + f[1]
		}
	}
	return c
}

// find looks s's key up in o's named or anonymous set or map.
func (t *tracer) find(s *state, o op) (*element, bool, error) {
	elems := o.elems
	if o.set != "" {
		var err error
		if elems, err = t.elements(o.set); err != nil {
			return nil, false, err
		}
	}
	vals := make([]string, len(o.key))
	for i, sel := range o.key {
		vals[i] = s.value(sel)
	}
	for i := range elems {
		el := &elems[i]
		if len(el.key) != len(o.key) {
			return nil, false, fmt.Errorf("@%s element %q: want %d parts", o.set, strings.Join(el.key, " . "), len(o.key))
		}
		all := true
		for j, sel := range o.key {
			m, err := component(sel, el.key[j], vals[j])
			if err != nil {
				return nil, false, err
			}
			if !m {
				all = false
				break
			}
		}
		if all {
			return el, true, nil
		}
	}
	return nil, false, nil
}

// elements are the parsed elements of a named set or map of svcnat's
// table.
func (t *tracer) elements(name string) ([]element, error) {
	if els, ok := t.sets[name]; ok {
		return els, nil
	}
	set := t.object(name)
	if set == nil || set.Kind == backend.KindChain {
		return nil, fmt.Errorf("@%s is no set or map of the table", name)
	}
	els := make([]element, 0, len(set.Rules))
	for _, r := range set.Rules {
		els = append(els, parseElement(r.Text()))
	}
	t.sets[name] = els
	return els, nil
}

// value is what a key part reads from the packet, in the form element
// parts are compared with.
func (s *state) value(sel selector) string {
	switch sel {
	case selSaddr:
		return s.pkt.Src.Unmap().String()
	case selDaddr:
		return s.dst.String()
	case selL4proto:
		return s.pkt.Proto
	case selDport:
		return strconv.Itoa(s.dport)
	}
	if k, ok := strings.CutPrefix(string(sel), constPrefix); ok {
		return k
	}
	return strconv.FormatUint(uint64(s.mark), 10)
}

// protoNames are the protocol numbers nft may list for the protocols a
// traced packet can have.
var protoNames = map[string]string{"6": "tcp", "17": "udp", "132": "sctp"}

// component reports whether one element part (an address, a prefix, a
// range, a protocol or a port) holds the packet's value v.
func component(sel selector, part, v string) (bool, error) {
	switch sel {
	case selSaddr, selDaddr:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return false, err
		}
		if lo, hi, ok := strings.Cut(part, "-"); ok {
			l, err1 := netip.ParseAddr(lo)
			h, err2 := netip.ParseAddr(hi)
			if err1 != nil || err2 != nil {
				return false, fmt.Errorf("address range %q", part)
			}
			return a.Is4() == l.Is4() && l.Compare(a) <= 0 && a.Compare(h) <= 0, nil
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return false, fmt.Errorf("prefix %q", part)
			}
			return p.Contains(a), nil
		}
		e, err := netip.ParseAddr(part)
		if err != nil {
			return false, fmt.Errorf("address %q", part)
		}
		return e.Unmap() == a, nil
	case selL4proto:
		if n, ok := protoNames[part]; ok {
			part = n
		}
		switch part {
		case "tcp", "udp", "sctp", "icmp", "icmpv6", "udplite", "dccp", "gre", "esp", "ah":
			return part == v, nil
		}
		return false, fmt.Errorf("protocol %q", part)
	}
	n, _ := strconv.ParseUint(v, 10, 32)
	lo, hi, isRange := strings.Cut(part, "-")
	l, err := strconv.ParseUint(lo, 0, 32)
	if err != nil {
		return false, fmt.Errorf("value %q", part)
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(hi, 0, 32); err != nil {
			return false, fmt.Errorf("value %q", part)
		}
	}
	return n >= l && n <= h, nil
}
