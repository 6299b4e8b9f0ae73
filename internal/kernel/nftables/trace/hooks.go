package trace

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// base is a base chain: a chain whose declaration hooks it into the
// stack ("type nat hook prerouting priority -100 ;").
type base struct {
	table    string
	chain    *backend.Chain
	typ      string // filter, nat, route
	hook     string // prerouting, input, forward, output, postrouting
	priority int
	policy   string // accept or drop
}

// namedPriorities are nft's names for the standard priorities of the ip
// and ip6 families (nft(8), "CHAIN PRIORITIES").
var namedPriorities = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

// parseBase reads a chain's declaration; ok is false for a regular chain
// (no hook). A declaration it cannot read is an error.
func parseBase(table string, c *backend.Chain) (b base, ok bool, err error) {
	if c.Kind != backend.KindChain || !strings.Contains(c.Policy, "hook ") {
		return base{}, false, nil
	}
	b = base{table: table, chain: c, policy: "accept"}
	for _, stmt := range strings.Split(c.Policy, ";") {
		f := strings.Fields(stmt)
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "type":
				b.typ = f[i+1]
			case "hook":
				b.hook = f[i+1]
			case "policy":
				b.policy = f[i+1]
			case "priority":
				if b.priority, err = parsePriority(f[i+1:]); err != nil {
					return base{}, false, fmt.Errorf("chain %s: %w", c.Name, err)
				}
			}
		}
	}
	if b.typ == "" || b.hook == "" {
		return base{}, false, fmt.Errorf("chain %s: declaration %q", c.Name, c.Policy)
	}
	return b, true, nil
}

// parsePriority reads "-100", "dstnat", "dstnat - 10" or "filter + 5".
func parsePriority(f []string) (int, error) {
	if len(f) == 0 {
		return 0, fmt.Errorf("priority missing")
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		v, ok := namedPriorities[f[0]]
		if !ok {
			return 0, fmt.Errorf("priority %q", f[0])
		}
		n = v
	}
	if len(f) >= 3 && (f[1] == "+" || f[1] == "-") {
		d, err := strconv.Atoi(f[2])
		if err != nil {
			return 0, fmt.Errorf("priority %q", strings.Join(f[:3], " "))
		}
		if f[1] == "-" {
			d = -d
		}
		n += d
	}
	return n, nil
}

// hookChains are the base chains of every table of rs on hook, in the
// order the kernel runs them: by priority (kernel's tie: registration
// order, which a dump does not tell; here svcnat's table first, then by
// table and chain name).
func hookChains(rs *backend.Ruleset, own, hook string) ([]base, error) {
	var out []base
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			b, ok, err := parseBase(t.Name, c)
			if err != nil {
				return nil, fmt.Errorf("table %s: %w", t.Name, err)
			}
			if ok && b.hook == hook {
				out = append(out, b)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		if (a.table == own) != (b.table == own) {
			return a.table == own
		}
		if a.table != b.table {
			return a.table < b.table
		}
		return a.chain.Name < b.chain.Name
	})
	return out, nil
}

// follow takes s through every hook it crosses, routing it after
// prerouting (or after postrouting, for a packet the host sends) by its
// destination then: a local one is delivered (input), any other
// forwarded or sent out. A packet the host sends to one of its own
// addresses comes back in over lo through prerouting and input, but not
// through nat chains: its connection's NAT was decided on the way out.
func (t *tracer) follow(s *state) []*state {
	if s.pkt.Origin == backend.OriginLocal {
		return t.through(s, []string{"output", "postrouting"}, func(s *state) []*state {
			if !t.h.local().IsLocal(s.dst) {
				return []*state{s}
			}
			s.loopback = true
			return t.through(s, []string{"prerouting", "input"}, nil)
		})
	}
	return t.through(s, []string{"prerouting"}, func(s *state) []*state {
		if t.delivered(s.dst) {
			return t.through(s, []string{"input"}, nil)
		}
		return t.through(s, []string{"forward", "postrouting"}, nil)
	})
}

// through walks s through hooks in order, then hands what is left to
// then (nil: nothing more). A drop, a reject or a cut ends a path where
// it is.
func (t *tracer) through(s *state, hooks []string, then func(*state) []*state) []*state {
	if len(hooks) == 0 {
		if then == nil {
			return []*state{s}
		}
		return then(s)
	}
	var out []*state
	for _, o := range t.hook(s, hooks[0]) {
		if o.verdict == backend.Drop || o.verdict == backend.Reject || o.cut != "" {
			out = append(out, o)
			continue
		}
		out = append(out, t.through(o, hooks[1:], then)...)
	}
	return out
}

// hook runs the base chains of one hook in priority order. Only the
// chains of svcnat's table are evaluated; another table's base chain on
// the hook is listed on the path as not evaluated, where it runs.
func (t *tracer) hook(s *state, hook string) []*state {
	states := []*state{s}
	for _, b := range t.hooks[hook] {
		if s.loopback && b.typ == "nat" {
			continue
		}
		var next []*state
		for _, s := range states {
			if s.verdict == backend.Drop || s.verdict == backend.Reject || s.cut != "" {
				next = append(next, s)
				continue
			}
			if b.table != t.h.table() {
				// An inet table is read as "inet NAME" (nftables.Runner.Read).
				table := b.table
				if !strings.Contains(table, " ") {
					table = backend.NFTFamily(t.rs.Family) + " " + table
				}
				s.unknown = append(s.unknown, fmt.Sprintf("%s %s: base chain of another table (%s), not evaluated",
					table, b.chain.Name, strings.TrimSpace(b.chain.Policy)))
				next = append(next, s)
				continue
			}
			next = append(next, t.baseChain(s, b)...)
		}
		states = next
	}
	return states
}

// baseChain walks one base chain of svcnat's table and returns the
// states after it.
func (t *tracer) baseChain(s *state, b base) []*state {
	s = s.clone()
	s.hook = b.hook
	s.hops = append(s.hops, backend.Hop{Table: t.tableLabel(), Hook: strings.ToUpper(b.hook), Chains: []string{b.chain.Name}})
	var out []*state
	for _, o := range t.walk(s, b.chain, 0) {
		h := &o.s.hops[len(o.s.hops)-1]
		if o.exit == fellThrough {
			h.End = "policy " + b.policy
			if b.policy == "drop" {
				o.s.verdict, o.s.decided = backend.Drop, backend.Decision{}
				o.s.policy = t.tableLabel() + " " + b.chain.Name + " policy drop"
			}
		}
		if len(o.s.recorded) > 0 {
			h.End += ", records the client in " + strings.Join(o.s.recorded, ", ")
			o.s.recorded = nil
		}
		out = append(out, o.s)
	}
	return out
}

// delivered reports whether the routing decision delivers a packet to dst
// locally (input): the host's addresses, and broadcast and multicast ones,
// which the host receives too.
func (t *tracer) delivered(dst netip.Addr) bool {
	dst = dst.Unmap()
	return t.h.local().IsLocal(dst) || dst.IsMulticast() || dst == limitedBroadcast
}

// addrType is fib's address type of a: the host's addresses are local;
// other addresses are unicast but for multicast ones and the limited
// broadcast address (a subnet's broadcast address is taken as unicast:
// trace does not know the host's subnets).
func (t *tracer) addrType(a netip.Addr) string {
	switch a = a.Unmap(); {
	case t.h.local().IsLocal(a):
		return "local"
	case a.IsMulticast():
		return "multicast"
	case a == limitedBroadcast:
		return "broadcast"
	}
	return "unicast"
}

// limitedBroadcast is 255.255.255.255.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})
