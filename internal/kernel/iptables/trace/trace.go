// Package trace is the iptables backend's tracer (backend.Tracer): it
// follows one packet through iptables rules — planned or live, they are
// the same rule model — through every table, hook by hook in the kernel's
// order (hooks.go), and says where it goes: the chains it enters, every
// branch of a random split with its probability, whether it is marked for
// masquerading, and the verdict with the rule that decided it. It also
// draws the chain graph of the owned rules (graph.go). It returns
// backend's result types and prints nothing: package internal/trace
// prints them.
//
// It evaluates the matches and targets svcnat's (kube-proxy's) rules use
// and those host firewalls use most (connection state, multiport, marks,
// lo). A rule it cannot evaluate is reported on the path with its table,
// never silently skipped: it is taken as not matching, and the path says
// so. Only rules that cannot change the path (LOG, no target) are passed
// over.
package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// Host is a host's iptables rules, planned or live (they are the same
// model), as trace evaluates them: it is the iptables backend's
// backend.Tracer.
type Host struct {
	// Rules are the tables of each family, built-in chains included.
	Rules map[backend.Family]*backend.Ruleset
	// Local are the host's addresses: -m addrtype LOCAL, and whether a
	// packet is delivered locally (filter INPUT) or forwarded (FORWARD).
	Local backend.HostAddresses
	// Prefix is the chain prefix of the rules svcnat owns, which Graph
	// draws.
	Prefix string
}

var _ backend.Tracer = Host{}

// MaxJumpDepth is how many jumps deep into user chains trace follows a
// path; a path that goes deeper is cut (backend.Path.Cut).
const MaxJumpDepth = 64

// Trace follows p through h's rules.
func (h Host) Trace(p backend.Packet) (*backend.Result, error) {
	fam := backend.IPv4
	if p.Dst.Unmap().Is6() {
		fam = backend.IPv6
	}
	if p.Src.Unmap().Is6() != p.Dst.Unmap().Is6() {
		return nil, fmt.Errorf("source %s and destination %s are of different families", p.Src, p.Dst)
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
		rs = &backend.Ruleset{Family: fam}
	}
	t := &tracer{h: h, rs: rs}
	start := &state{pkt: p, dst: p.Dst.Unmap(), dport: p.DPort, prob: 1}
	res := &backend.Result{Packet: p}
	for _, s := range t.follow(start) {
		res.Paths = append(res.Paths, s.path())
	}
	return res, nil
}

// state is a packet on one path.
type state struct {
	pkt          backend.Packet
	dst          netip.Addr
	dport        int
	mark         uint32
	marked       bool
	dnat         bool
	prob         float64
	condition    string
	hops         []backend.Hop
	masquerade   string
	verdict      backend.Verdict
	decided      backend.Rule
	decidedTable string
	policy       string
	unknown      []string
	// at is the hook being walked, which tells the interfaces apart.
	at stage
	// loopback: the packet is on its way back in over lo (sent by the
	// host to one of its own addresses).
	loopback bool
	// untracked: raw's CT --notrack (or NOTRACK) took the packet out of
	// connection tracking, so nat never sees it.
	untracked bool
	// ctmark is the connection's mark (CONNMARK, -m connmark).
	ctmark uint32
	// cut is the chain where the walk went past MaxJumpDepth.
	cut string
}

func (s *state) clone() *state {
	c := *s
	c.hops = backend.CloneHops(s.hops)
	c.unknown = append([]string(nil), s.unknown...)
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
		Policy: s.policy, Unknown: s.unknown}
	if s.decided.Chain != "" {
		p.Decided = backend.Decision{Table: s.decidedTable, Chain: s.decided.Chain, Rule: s.decided.String()}
	}
	if s.cut != "" {
		p.Cut = &backend.Cut{Chain: s.cut, Depth: MaxJumpDepth}
	}
	return p
}

type tracer struct {
	h  Host
	rs *backend.Ruleset
}

// local reports whether a is one of the host's addresses, as -m addrtype
// --dst-type LOCAL sees it.
func (t *tracer) local(a netip.Addr) bool { return t.h.Local.IsLocal(a) }

func (t *tracer) chain(table, name string) *backend.Chain {
	if tb := t.rs.Table(table); tb != nil {
		return tb.Chain(name)
	}
	return nil
}

// How a chain's walk ended for one state.
type exit int

const (
	fellThrough exit = iota // end of the chain, or RETURN
	terminated              // ACCEPT, DROP, REJECT, DNAT, MASQUERADE: the hook ends
)

type outcome struct {
	s    *state
	exit exit
}

// hook walks one built-in chain and returns the states after it.
func (t *tracer) hook(s *state, st stage) []*state {
	table, hook := st.table, st.hook
	c := t.chain(table, hook)
	if table == "nat" && s.untracked {
		return []*state{s}
	}
	if !shown(st) && (c == nil || len(c.Rules) == 0 && policyOf(c) == "ACCEPT") {
		return []*state{s}
	}
	s = s.clone()
	s.at = st
	s.hops = append(s.hops, backend.Hop{Table: table, Hook: hook, Chains: []string{hook}})
	var out []*state
	for _, o := range t.walk(s, table, hook, 0) {
		h := &o.s.hops[len(o.s.hops)-1]
		if o.exit == fellThrough {
			policy := policyOf(c)
			h.End = "policy " + policy
			if policy == "DROP" {
				o.s.verdict, o.s.decided, o.s.decidedTable = backend.Drop, backend.Rule{}, table
				o.s.policy = table + " " + hook + " policy DROP"
			}
		}
		out = append(out, o.s)
	}
	return out
}

// policyOf is a built-in chain's policy (ACCEPT when the chain is
// missing).
func policyOf(c *backend.Chain) string {
	if c != nil && c.Policy != "" && c.Policy != "-" {
		return c.Policy
	}
	return "ACCEPT"
}

// walk evaluates a user or built-in chain from its first rule. A jump
// past MaxJumpDepth ends the path there, cut: going on with the rules
// after the jump would claim a verdict the rules never give.
func (t *tracer) walk(s *state, table, chain string, depth int) []outcome {
	c := t.chain(table, chain)
	if c == nil {
		return []outcome{{s, fellThrough}}
	}
	if depth > MaxJumpDepth {
		s.cut = chain
		return []outcome{{s, terminated}}
	}
	return t.walkChain(s, table, c, depth)
}

// walkFrom evaluates chain c from rule index i on.
func (t *tracer) walkFrom(s *state, table, chain string, c *backend.Chain, i, depth int) []outcome {
	rest := &backend.Chain{Name: c.Name, Policy: c.Policy, Rules: c.Rules[i:]}
	return t.walkChain(s, table, rest, depth)
}

func (t *tracer) walkChain(s *state, table string, c *backend.Chain, depth int) []outcome {
	for i, r := range c.Rules {
		sp, err := rules.ParseSpec(r)
		if err != nil {
			s.notEvaluated(r, err.Error())
			continue
		}
		if inert(sp) {
			// It cannot change where the packet goes, whether it
			// matches or not: nothing to evaluate, nothing to list.
			continue
		}
		yes, no, ok := t.matches(s, r, sp)
		if !ok {
			continue
		}
		var out []outcome
		if yes != nil {
			out = t.target(yes, table, c.Name, c, i, r, sp, depth)
		}
		if no != nil {
			// A split: the branch that does not match goes on with the
			// rest of the chain.
			out = append(out, t.walkFrom(no, table, c.Name, c, i+1, depth)...)
		}
		return out
	}
	return []outcome{{s, fellThrough}}
}

// target applies a matched rule's target to s; rules after it in c run
// when the target lets the packet go on.
func (t *tracer) target(s *state, table, chain string, c *backend.Chain, i int, r backend.Rule, sp rules.Spec, depth int) []outcome {
	hop := &s.hops[len(s.hops)-1]
	goOn := func(s *state) []outcome { return t.walkFrom(s, table, chain, c, i+1, depth) }
	decide := func(v backend.Verdict, end string) []outcome {
		s.verdict, s.decided, s.decidedTable = v, r, table
		hop.End = end
		return []outcome{{s, terminated}}
	}
	switch tg := sp.Target; tg {
	case "":
		return goOn(s)
	case "RETURN":
		return []outcome{{s, fellThrough}}
	case "ACCEPT":
		hop.End = "ACCEPT"
		return []outcome{{s, terminated}}
	case "DROP":
		return decide(backend.Drop, "DROP")
	case "REJECT":
		return decide(backend.Reject, "REJECT")
	case "MARK":
		if err := s.applyMark(sp); err != nil {
			s.notEvaluated(r, err.Error())
		}
		// The mark kube-proxy's MARK-MASQ chain sets asks POSTROUTING to
		// masquerade (whatever masquerade_bit it is); POSTROUTING clears
		// it again, so remember that it was set.
		s.marked = s.marked || strings.HasSuffix(chain, "-"+string(vocab.MarkMasq))
		return goOn(s)
	case "DNAT":
		to, _ := sp.TargetOption("--to-destination")
		ap, err := parseDest(to.Value(), s.dport)
		if err != nil {
			s.notEvaluated(r, err.Error())
			return goOn(s)
		}
		s.dst, s.dport, s.dnat = ap.Addr(), int(ap.Port()), true
		s.decided, s.decidedTable = r, table
		hop.End = "DNAT " + ap.String()
		return []outcome{{s, terminated}}
	case "MASQUERADE":
		s.masquerade = "the node's address toward " + s.dst.String()
		hop.End = "MASQUERADE"
		return []outcome{{s, terminated}}
	case "SNAT":
		to, _ := sp.TargetOption("--to-source")
		s.masquerade = to.Value()
		hop.End = "SNAT " + to.Value()
		return []outcome{{s, terminated}}
	case "CONNMARK":
		if err := s.applyConnmark(sp); err != nil {
			s.notEvaluated(r, err.Error())
		}
		return goOn(s)
	case "CT":
		if _, ok := sp.TargetOption("--notrack"); ok {
			s.untracked = true
		}
		// Zones, helpers, timeouts and events do not change the path.
		return goOn(s)
	case "NOTRACK":
		s.untracked = true
		return goOn(s)
	}
	if t.chain(table, sp.Target) == nil {
		s.notEvaluated(r, "target "+sp.Target+" is not evaluated")
		return goOn(s)
	}
	// A jump or a goto into a user chain.
	hop.Chains = append(hop.Chains, sp.Target)
	var out []outcome
	for _, o := range t.walk(s, table, sp.Target, depth+1) {
		switch {
		case o.exit == terminated:
			out = append(out, o)
		case sp.Goto:
			// -g: RETURN goes back past this chain.
			out = append(out, outcome{o.s, fellThrough})
		default:
			out = append(out, goOn(o.s)...)
		}
	}
	return out
}

// passThrough are the targets that let the packet go on unchanged as far
// as its path is concerned: logging, tracing, QoS and header tweaks,
// security labels.
var passThrough = map[string]bool{
	"LOG": true, "NFLOG": true, "ULOG": true, "TRACE": true, "AUDIT": true,
	"TCPMSS": true, "CHECKSUM": true, "DSCP": true, "TOS": true, "TTL": true, "HL": true,
	"CLASSIFY": true, "SECMARK": true, "CONNSECMARK": true, "IDLETIMER": true, "LED": true,
}

// inert reports whether a rule cannot change the packet's path whatever it
// matches: no target, or one that lets the packet pass unchanged.
func inert(sp rules.Spec) bool {
	return sp.Target == "" || passThrough[sp.Target]
}

// notEvaluated records a rule that could not be evaluated (taken as not
// matching), with its table, as the path lists it.
func (s *state) notEvaluated(r backend.Rule, why string) {
	s.unknown = append(s.unknown, fmt.Sprintf("%s %s (%s)", s.at.table, r, why))
}

func parseDest(v string, port int) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(v, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--to-destination %q", v)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

func (s *state) applyMark(sp rules.Spec) error {
	for _, o := range sp.TargetOptions {
		v, m, err := parseMark(o.Value())
		if err != nil {
			return err
		}
		switch o.Name {
		case "--set-xmark":
			s.mark = (s.mark &^ m) ^ v
		case "--set-mark":
			s.mark = (s.mark &^ m) | v
		case "--or-mark":
			s.mark |= v
		case "--and-mark":
			s.mark &= v
		case "--xor-mark":
			s.mark ^= v
		default:
			return fmt.Errorf("MARK %s is not evaluated", o.Name)
		}
	}
	return nil
}

// applyConnmark applies a CONNMARK target as the kernel's connmark_tg
// does (iptables-save prints every form as --set-xmark, --save-mark or
// --restore-mark with their masks).
func (s *state) applyConnmark(sp rules.Spec) error {
	mask := func(name string) (uint32, error) {
		o, ok := sp.TargetOption(name)
		if !ok {
			return 0xffffffff, nil
		}
		m, _, err := parseMark(o.Value())
		return m, err
	}
	nf, err := mask("--nfmask")
	if err != nil {
		return err
	}
	ct, err := mask("--ctmask")
	if err != nil {
		return err
	}
	for _, o := range sp.TargetOptions {
		switch o.Name {
		case "--set-xmark", "--set-mark":
			v, m, err := parseMark(o.Value())
			if err != nil {
				return err
			}
			if o.Name == "--set-xmark" {
				s.ctmark = (s.ctmark &^ m) ^ v
			} else {
				s.ctmark = (s.ctmark &^ m) | v
			}
		case "--save-mark":
			s.ctmark = (s.ctmark &^ ct) ^ (s.mark & nf)
		case "--restore-mark":
			s.mark = (s.mark &^ nf) ^ (s.ctmark & ct)
		case "--nfmask", "--ctmask":
		default:
			return fmt.Errorf("CONNMARK %s is not evaluated", o.Name)
		}
	}
	return nil
}

// parseMark reads "value[/mask]" (mask 0xffffffff when absent).
func parseMark(s string) (v, m uint32, err error) {
	val, mask, hasMask := strings.Cut(s, "/")
	v64, err := strconv.ParseUint(val, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("mark %q", s)
	}
	m64 := uint64(0xffffffff)
	if hasMask {
		if m64, err = strconv.ParseUint(mask, 0, 32); err != nil {
			return 0, 0, fmt.Errorf("mark %q", s)
		}
	}
	return uint32(v64), uint32(m64), nil
}
