package trace

import (
	"net/netip"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// stage is one table's built-in chain at one hook.
type stage struct{ table, hook string }

// The tables at each hook, in the kernel's order (netfilter's priorities:
// raw -300, conntrack, mangle -150, nat DNAT -100, filter 0, security 50,
// nat SNAT 100; the same for IPv4 and IPv6).
var (
	prerouting = []stage{{"raw", "PREROUTING"}, {"mangle", "PREROUTING"}, {"nat", "PREROUTING"}}
	input      = []stage{{"mangle", "INPUT"}, {"filter", "INPUT"}, {"security", "INPUT"}, {"nat", "INPUT"}}
	forward    = []stage{{"mangle", "FORWARD"}, {"filter", "FORWARD"}, {"security", "FORWARD"}, {"mangle", "POSTROUTING"}, {"nat", "POSTROUTING"}}
	output     = []stage{{"raw", "OUTPUT"}, {"mangle", "OUTPUT"}, {"nat", "OUTPUT"}, {"filter", "OUTPUT"}, {"security", "OUTPUT"}, {"mangle", "POSTROUTING"}, {"nat", "POSTROUTING"}}
	// loopback is the way back in of a packet the host sends to one of its
	// own addresses: it arrives on lo and crosses PREROUTING and INPUT
	// again, but not nat, whose decision for the connection was taken on
	// the way out (checked against the kernel: nat PREROUTING and INPUT
	// count no packet on that leg, raw, mangle and filter do).
	loopback = []stage{{"raw", "PREROUTING"}, {"mangle", "PREROUTING"}, {"mangle", "INPUT"}, {"filter", "INPUT"}, {"security", "INPUT"}}
)

// follow takes s through every hook it crosses, routing it after
// PREROUTING (or after POSTROUTING for a packet the host sends) by its
// destination then: a local one is delivered (INPUT), any other forwarded
// or sent out.
func (t *tracer) follow(s *state) []*state {
	if s.pkt.Origin == backend.OriginLocal {
		return t.through(s, output, func(s *state) []*state {
			if !t.local(s.dst) {
				return []*state{s}
			}
			s.loopback = true
			return t.through(s, loopback, nil)
		})
	}
	return t.through(s, prerouting, func(s *state) []*state {
		if t.delivered(s.dst) {
			return t.through(s, input, nil)
		}
		return t.through(s, forward, nil)
	})
}

// through walks s through stages in order, then hands what is left to
// then (nil: nothing more). A DROP or REJECT ends a path where it is, and
// so does a cut (see walk).
func (t *tracer) through(s *state, stages []stage, then func(*state) []*state) []*state {
	if len(stages) == 0 {
		if then == nil {
			return []*state{s}
		}
		return then(s)
	}
	var out []*state
	for _, o := range t.hook(s, stages[0]) {
		if o.verdict == backend.Drop || o.verdict == backend.Reject || o.cut != "" {
			out = append(out, o)
			continue
		}
		out = append(out, t.through(o, stages[1:], then)...)
	}
	return out
}

// shown says whether a hook appears on the path even when its chain holds
// no rule: the nat and filter hooks svcnat writes to always do (the
// README's examples show them); the others (raw, mangle, security, nat
// INPUT) only when they hold rules or a policy other than ACCEPT, so a
// host without such rules reads as before.
func shown(st stage) bool {
	return st.table == "filter" || st.table == "nat" && st.hook != "INPUT"
}

// delivered reports whether the routing decision delivers a packet to dst
// locally (INPUT): the host's addresses, and broadcast and multicast ones,
// which the host receives too.
func (t *tracer) delivered(dst netip.Addr) bool {
	dst = dst.Unmap()
	return t.local(dst) || dst.IsMulticast() || dst == limitedBroadcast
}

// limitedBroadcast is 255.255.255.255.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})
