// Package trace is the nftables backend's tracer (backend.Tracer): it
// follows one packet — the first of a connection — through svcnat's
// nftables table, planned or live (they are the same model), and says
// where it goes: the base chains it crosses hook by hook, in the kernel's
// order of hooks and priorities (hooks.go), the chains it enters through
// jump, goto and verdict maps, every branch of a numgen split with its
// probability, affinity as conditional paths, the masquerade mark, and
// the verdict with the rule that decided it. It also draws the table's
// chain graph (graph.go). It returns backend's result types and prints
// nothing: package internal/trace prints them.
//
// It evaluates the vocabulary svcnat's renderer (kube-proxy's nftables
// mode) writes, as nft lists it (rule.go, eval.go): set and verdict-map
// lookups of concatenated keys, anonymous sets and prefixes, fib address
// types from the host's addresses, ct state and status, numgen, marks,
// dnat, masquerade, reject, drop and the chain verdicts. A rule it cannot
// evaluate is listed on the path (backend.Path.Unknown), taken as not
// matching, never skipped in silence; so is every base chain of another
// table on a hook the packet crosses, which trace does not evaluate (an
// accept there ends only that table's chain; a drop would end the
// packet).
package trace

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// DefaultTable is svcnat's table when Host.Table is empty: the nftables
// renderer's default (render.DefaultTable; a test keeps them equal).
const DefaultTable = "svcnat"

// Host is a host's nftables rules, planned or live, as trace evaluates
// them: it is the nftables backend's backend.Tracer.
type Host struct {
	// Rules are the tables of each family: svcnat's, and any other the
	// caller read (their base chains are listed, not evaluated).
	Rules map[backend.Family]*backend.Ruleset
	// Local are the host's addresses: fib … type local, and whether a
	// packet is delivered locally (input) or forwarded.
	Local []netip.Addr
	// Table is svcnat's table in each family (DefaultTable when empty).
	Table string
}

var _ backend.Tracer = Host{}

// MaxJumpDepth is how many jumps deep trace follows a path; a path that
// goes deeper is cut (backend.Path.Cut). The kernel refuses more than 16
// nested jumps; a loop can only come from a hand-made dump.
const MaxJumpDepth = 64

func (h Host) table() string {
	if h.Table == "" {
		return DefaultTable
	}
	return h.Table
}

func (h Host) local() backend.HostAddresses { return h.Local }

// Trace follows p through h's rules.
func (h Host) Trace(p backend.Packet) (*backend.Result, error) {
	if p.Src.Unmap().Is6() != p.Dst.Unmap().Is6() {
		return nil, fmt.Errorf("source %s and destination %s are of different families", p.Src, p.Dst)
	}
	fam := backend.IPv4
	if p.Dst.Unmap().Is6() {
		fam = backend.IPv6
	}
	switch p.Proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("protocol %q: want tcp, udp or sctp", p.Proto)
	}
	if p.InInterface != "" && p.Origin != backend.OriginExternal {
		return nil, fmt.Errorf("an in-interface is for a packet from outside: a local one leaves on its route")
	}
	if p.InInterface == "lo" {
		return nil, fmt.Errorf("a packet from outside does not arrive on lo: trace a local one (origin local)")
	}
	rs := h.Rules[fam]
	if rs == nil {
		rs = &backend.Ruleset{Family: fam, Syntax: backend.NFTables}
	}
	t := &tracer{h: h, rs: rs, hooks: map[string][]base{}, sets: map[string][]element{}}
	for _, hook := range []string{"prerouting", "input", "forward", "output", "postrouting"} {
		bs, err := hookChains(rs, h.table(), hook)
		if err != nil {
			return nil, err
		}
		t.hooks[hook] = bs
	}
	t.masqMark = masqueradeMark(rs.Table(h.table()))
	start := &state{pkt: p, dst: p.Dst.Unmap(), dport: p.DPort, prob: 1}
	res := &backend.Result{Packet: p}
	for _, s := range t.follow(start) {
		res.Paths = append(res.Paths, s.path())
	}
	return res, nil
}

// state is a packet on one path.
type state struct {
	pkt        backend.Packet
	dst        netip.Addr
	dport      int
	mark       uint32
	marked     bool
	dnat       bool
	prob       float64
	condition  string
	hops       []backend.Hop
	masquerade string
	verdict    backend.Verdict
	decided    backend.Decision
	policy     string
	unknown    []string
	// hook is the hook being walked.
	hook string
	// loopback: the packet is on its way back in over lo (sent by the
	// host to one of its own addresses).
	loopback bool
	// recorded are the sets the packet was added to (update @…) in the
	// base chain being walked, which its hop's end notes.
	recorded []string
	// cut is the chain where the walk went past MaxJumpDepth.
	cut string
}

func (s *state) clone() *state {
	c := *s
	c.hops = backend.CloneHops(s.hops)
	c.unknown = append([]string(nil), s.unknown...)
	c.recorded = append([]string(nil), s.recorded...)
	return &c
}

func (s *state) path() backend.Path {
	v := s.verdict
	if v == "" && s.cut == "" {
		v = backend.Accept
		if s.dnat {
			v = backend.DNAT
		}
	}
	p := backend.Path{Probability: s.prob, Condition: s.condition, Hops: s.hops, Marked: s.marked, Mark: s.mark,
		Masquerade: s.masquerade, Dst: netip.AddrPortFrom(s.dst, uint16(s.dport)), Verdict: v,
		Decided: s.decided, Policy: s.policy, Unknown: s.unknown}
	if s.cut != "" {
		p.Cut = &backend.Cut{Chain: s.cut, Depth: MaxJumpDepth}
	}
	return p
}

type tracer struct {
	h     Host
	rs    *backend.Ruleset
	hooks map[string][]base
	// sets caches the parsed elements of each named set and map.
	sets map[string][]element
	// masqMark is the mark bit whose being set asks postrouting to
	// masquerade (the masquerading rule's test); 0 when there is none.
	masqMark uint32
}

// tableLabel names svcnat's table as nft does ("ip svcnat").
func (t *tracer) tableLabel() string {
	return backend.NFTFamily(t.rs.Family) + " " + t.h.table()
}

// object returns one of svcnat's table's chains, sets or maps, or nil.
func (t *tracer) object(name string) *backend.Chain {
	if tb := t.rs.Table(t.h.table()); tb != nil {
		return tb.Chain(name)
	}
	return nil
}

// How a chain's walk ended for one state.
type exit int

const (
	fellThrough exit = iota // end of the chain, or return
	terminated              // accept, drop, reject, a NAT statement: the base chain ends
)

type outcome struct {
	s    *state
	exit exit
}

// walk evaluates chain c from its first rule. A jump past MaxJumpDepth
// ends the path there, cut.
func (t *tracer) walk(s *state, c *backend.Chain, depth int) []outcome {
	if depth > MaxJumpDepth {
		s.cut = c.Name
		return []outcome{{s, terminated}}
	}
	return t.walkFrom(s, c, 0, depth)
}

// walkFrom evaluates chain c from rule i on.
func (t *tracer) walkFrom(s *state, c *backend.Chain, i, depth int) []outcome {
	for ; i < len(c.Rules); i++ {
		branches := t.evalRule(s, c, c.Rules[i])
		if len(branches) == 1 && !branches[0].matched {
			continue
		}
		var out []outcome
		for _, b := range branches {
			switch {
			case !b.matched, b.v.kind == "", b.v.kind == "continue":
				out = append(out, t.walkFrom(b.s, c, i+1, depth)...)
			default:
				out = append(out, t.verdict(b.s, c, i, b.v, depth)...)
			}
		}
		return out
	}
	return []outcome{{s, fellThrough}}
}

// verdict applies a rule's verdict; rules after rule i of c run when it
// lets the packet go on (a jump that returns).
func (t *tracer) verdict(s *state, c *backend.Chain, i int, v verdict, depth int) []outcome {
	r := c.Rules[i]
	hop := &s.hops[len(s.hops)-1]
	decide := func(vd backend.Verdict) []outcome {
		s.verdict, s.decided = vd, t.decision(c, r)
		hop.End = v.kind
		return []outcome{{s, terminated}}
	}
	switch v.kind {
	case "accept", "nat":
		if v.kind == "accept" {
			hop.End = "accept"
		}
		return []outcome{{s, terminated}}
	case "drop":
		return decide(backend.Drop)
	case "reject":
		return decide(backend.Reject)
	case "return":
		return []outcome{{s, fellThrough}}
	}
	target := t.object(v.chain)
	if target == nil || target.Kind != backend.KindChain {
		s.notEvaluated(t, r, v.kind+" to "+v.chain+", which is no chain of the table")
		return t.walkFrom(s, c, i+1, depth)
	}
	if v.via != "" {
		// A dispatch chain serves many ports: name the one it serves here.
		hop.Chains = append(hop.Chains, v.chain+" ("+v.via+")")
	} else {
		hop.Chains = append(hop.Chains, v.chain)
	}
	var out []outcome
	for _, o := range t.walk(s, target, depth+1) {
		switch {
		case o.exit == terminated:
			out = append(out, o)
		case v.kind == "goto":
			// The end of a chain gone to returns past this one.
			out = append(out, outcome{o.s, fellThrough})
		default:
			out = append(out, t.walkFrom(o.s, c, i+1, depth)...)
		}
	}
	return out
}

func (t *tracer) decision(c *backend.Chain, r backend.Rule) backend.Decision {
	return backend.Decision{Table: t.tableLabel(), Chain: c.Name, Rule: r.String()}
}

// notEvaluated records a rule that could not be evaluated (taken as not
// matching), with its table, as the path lists it.
func (s *state) notEvaluated(t *tracer, r backend.Rule, why string) {
	s.unknown = append(s.unknown, fmt.Sprintf("%s %s (%s)", t.tableLabel(), r, why))
}

// masqueradeMark finds the mark bit the masquerading rule tests
// ("meta mark & 0x00004000 != 0x00000000 … masquerade"): setting it is
// what marks a packet for masquerade.
func masqueradeMark(tb *backend.Table) uint32 {
	if tb == nil {
		return 0
	}
	for _, c := range tb.Chains {
		for _, r := range c.Rules {
			text := r.Text()
			rest, ok := strings.CutPrefix(text, "meta mark & ")
			if !ok || !strings.Contains(text, " masquerade") {
				continue
			}
			m, _, _ := strings.Cut(rest, " ")
			if v, err := parseUint32(m); err == nil {
				return v
			}
		}
	}
	return 0
}
