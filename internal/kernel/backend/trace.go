package backend

import (
	"fmt"
	"net/netip"
)

// Tracer follows packets through one backend's rules, planned or live
// (they are the same model), and draws them as a graph. A backend gives
// one for a set of rules and the host they are on; trace and graph print
// what it returns and know nothing of how it was found.
type Tracer interface {
	// Trace follows p through the rules, through every table and hook
	// in the kernel's order, and returns every path it can take. It
	// fails only on a question the rules cannot answer (mixed families,
	// an unknown protocol), never on a rule it cannot evaluate: that is
	// listed on the path (Path.Unknown).
	Trace(p Packet) (*Result, error)
	// Graph is the chain graph of family f's rules that svcnat owns:
	// the hooks, the chains they lead to and where the rules end; with
	// service set ("namespace/name"), only the chains that serve it and
	// the ones leading to them.
	Graph(f Family, service string) (*Graph, error)
}

// Origin is where a traced packet comes from.
type Origin string

const (
	// OriginExternal: the packet arrives on an interface other than lo
	// (PREROUTING).
	OriginExternal Origin = "external"
	// OriginLocal: a process of the host sends it (OUTPUT); to one of the
	// host's addresses it comes back in over lo (INPUT).
	OriginLocal Origin = "local"
)

// Packet is trace's question: the first packet of a connection.
type Packet struct {
	Src, Dst netip.Addr
	Proto    string // tcp, udp or sctp
	DPort    int
	Origin   Origin
	// InInterface is the interface an external packet arrives on, for
	// -i rules; "" when not known (then it is some interface other than
	// lo, and -i rules naming another are not evaluated).
	InInterface string
}

func (p Packet) String() string {
	origin := string(p.Origin)
	if p.InInterface != "" {
		origin += " on " + p.InInterface
	}
	return fmt.Sprintf("%s %s -> %s (%s)", p.Proto, p.Src, netip.AddrPortFrom(p.Dst, uint16(p.DPort)), origin)
}

// HostAddresses are the addresses of the host whose rules are traced:
// they decide what is local to it (a destination type LOCAL, delivery to
// the host rather than forwarding).
type HostAddresses []netip.Addr

// IsLocal reports whether a is one of the host's addresses as the kernel
// routes it (a local route): one of h, or a loopback address.
func (h HostAddresses) IsLocal(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, l := range h {
		if l.Unmap() == a {
			return true
		}
	}
	return false
}

// Verdict is what finally happens to a packet.
type Verdict string

const (
	Accept Verdict = "ACCEPT" // delivered or forwarded, unchanged
	DNAT   Verdict = "DNAT"   // delivered or forwarded to a new destination
	Drop   Verdict = "DROP"
	Reject Verdict = "REJECT"
)

// Hop is one hook's walk: the chains entered, in order.
type Hop struct {
	Table  string   `json:"table"`
	Hook   string   `json:"hook"`
	Chains []string `json:"chains"`
	// End is how the hook ended: a target ("DNAT 10.64.1.2:80",
	// "ACCEPT", "MASQUERADE") or the built-in chain's policy.
	End string `json:"end"`
}

// CloneHops copies hops deep enough for a tracer's branch to extend its
// copy (a hop's Chains grow as the walk goes on) without touching the
// others'.
func CloneHops(hops []Hop) []Hop {
	out := make([]Hop, len(hops))
	for i, h := range hops {
		h.Chains = append([]string(nil), h.Chains...)
		out[i] = h
	}
	return out
}

// Path is one way the packet can go. Random splits give each branch its
// probability; affinity gives conditional paths.
type Path struct {
	// Probability of this path among the unconditional ones; a
	// conditional path has the probability of reaching its condition.
	Probability float64
	// Condition, when set, is what must hold for this path ("the client
	// has affinity to SVCNAT-SEP-…, recorded within 10800s").
	Condition string
	Hops      []Hop
	// Marked: the masquerade mark was set on the way; Mark is the mark
	// at the end (POSTROUTING clears the bit as it masquerades).
	Marked bool
	Mark   uint32
	// Masquerade says how the source is rewritten in POSTROUTING, if it
	// is ("the node's address toward 10.64.1.2").
	Masquerade string
	// Dst is the destination after DNAT (the original one without).
	Dst     netip.AddrPort
	Verdict Verdict
	// Decided is the rule that decided the verdict (DNAT, DROP,
	// REJECT); zero for an ACCEPT by policy.
	Decided Decision
	// Policy is the built-in chain policy that dropped the packet
	// ("filter FORWARD policy DROP"), when no rule did.
	Policy string
	// Unknown lists the rules on the way that could not be evaluated
	// (taken as not matching), each with its table and why.
	Unknown []string
	// Cut, when set, says the path stopped before any verdict (then
	// Verdict is empty): what would happen to the packet is not known.
	Cut *Cut
}

// Decision is the rule that decided a path's verdict.
type Decision struct {
	// Table and Chain hold the rule.
	Table, Chain string
	// Rule is the rule as the backend writes it
	// ("-A SVCNAT-SVC-… -j REJECT").
	Rule string
}

// Cut is where a path stopped: a jump into Chain went past Depth jumps (a
// jump loop, which the kernel refuses to load but a dump may hold).
type Cut struct {
	Chain string
	Depth int
}

// Result is every path of one packet.
type Result struct {
	Packet Packet
	Paths  []Path
}

// Graph is the chain graph of one family's owned rules: the built-in
// hooks, the owned chains they lead to, and where the rules end (DNAT to
// an endpoint, DROP, REJECT, MASQUERADE), with each edge labelled by what
// it matches.
type Graph struct {
	Nodes []Node
	Edges []Edge
}

// Node is a chain or an end.
type Node struct {
	ID, Label string
	Kind      string // "hook", "chain" or "end"
}

// Edge is a rule that leads from one node to another.
type Edge struct {
	From, To, Label string
}
