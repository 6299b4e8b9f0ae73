package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// matches evaluates r's matches on s. It returns the state that matches
// (nil when none does) and, for a split, the state that does not: a
// random split gives each its share of s's probability; an affinity check
// (-m recent --rcheck) makes the matching state conditional. ok is false
// when the rule does not match at all, or cannot be evaluated (then s
// records it).
func (t *tracer) matches(s *state, r backend.Rule, sp rules.Spec) (yes, no *state, ok bool) {
	unknown := func(why string) (*state, *state, bool) {
		s.notEvaluated(r, why)
		return nil, nil, false
	}
	neg := func(o rules.Option, v bool) bool { return v != o.Negated }
	if o := sp.Source; o.Name != "" {
		m, err := inPrefix(s.pkt.Src, o.Value())
		if err != nil {
			return unknown(err.Error())
		}
		if !neg(o, m) {
			return nil, nil, false
		}
	}
	if o := sp.Destination; o.Name != "" {
		m, err := inPrefix(s.dst, o.Value())
		if err != nil {
			return unknown(err.Error())
		}
		if !neg(o, m) {
			return nil, nil, false
		}
	}
	if o := sp.Protocol; o.Name != "" {
		p := strings.ToLower(o.Value())
		if n, ok := protoNumbers[p]; ok {
			p = n
		}
		if !neg(o, p == s.pkt.Proto || p == "all" || p == "0") {
			return nil, nil, false
		}
	}
	for _, o := range []rules.Option{sp.InInterface, sp.OutInterface} {
		if o.Name == "" {
			continue
		}
		m, known := t.iface(s, o.Name).matches(o.Value())
		if !known {
			return unknown("interface " + o.Value() + " is not evaluated")
		}
		if !neg(o, m) {
			return nil, nil, false
		}
	}
	var split *float64
	var affinity string
	for _, m := range sp.Matches {
		switch m.Module {
		case "comment":
		case "tcp", "udp", "sctp":
			if m.Module != s.pkt.Proto {
				return nil, nil, false
			}
			for _, o := range m.Options {
				switch o.Name {
				case "--dport", "--destination-port":
					in, err := inPortRange(s.dport, o.Value())
					if err != nil {
						return unknown(err.Error())
					}
					if !neg(o, in) {
						return nil, nil, false
					}
				case "--syn", "--tcp-flags":
					// The first packet of a TCP connection is a SYN.
					in, err := synMatches(o)
					if err != nil {
						return unknown(err.Error())
					}
					if !neg(o, in) {
						return nil, nil, false
					}
				default:
					return unknown(m.Module + " " + o.Name + " is not evaluated")
				}
			}
		case "multiport":
			for _, o := range m.Options {
				switch o.Name {
				case "--dports", "--destination-ports", "--ports":
					in, err := inPortList(s.dport, o.Value())
					if err != nil {
						return unknown(err.Error())
					}
					if !in && o.Name == "--ports" {
						// --ports matches the source port too, which
						// trace does not know.
						return unknown("multiport --ports " + o.Value() + " (the source port) is not evaluated")
					}
					if !neg(o, in) {
						return nil, nil, false
					}
				default:
					return unknown("multiport " + o.Name + " is not evaluated")
				}
			}
		case "addrtype":
			for _, o := range m.Options {
				switch o.Name {
				case "--src-type", "--dst-type":
					a := s.pkt.Src
					if o.Name == "--dst-type" {
						a = s.dst
					}
					in, err := t.addrType(a, o.Value())
					if err != nil {
						return unknown(err.Error())
					}
					if !neg(o, in) {
						return nil, nil, false
					}
				case "--limit-iface-in", "--limit-iface-out":
					// LOCAL on the packet's own interface: the host's
					// addresses are taken as the interface's.
				default:
					return unknown("addrtype " + o.Name + " is not evaluated")
				}
			}
		case "mark":
			o, _ := m.Option("--mark")
			v, mask, err := parseMark(o.Value())
			if err != nil {
				return unknown(err.Error())
			}
			if !neg(o, s.mark&mask == v) {
				return nil, nil, false
			}
		case "connmark":
			o, _ := m.Option("--mark")
			v, mask, err := parseMark(o.Value())
			if err != nil {
				return unknown(err.Error())
			}
			if !neg(o, s.ctmark&mask == v) {
				return nil, nil, false
			}
		case "conntrack", "state":
			for _, o := range m.Options {
				if o.Name == "--ctdir" {
					// The first packet goes in the original direction.
					if !neg(o, o.Value() == "ORIGINAL") {
						return nil, nil, false
					}
					continue
				}
				if o.Name != "--ctstate" && o.Name != "--state" {
					return unknown(m.Module + " " + o.Name + " is not evaluated")
				}
				in := false
				for _, st := range strings.Split(o.Value(), ",") {
					switch st {
					case "NEW":
						in = in || !s.untracked // the first packet of a connection
					case "UNTRACKED":
						in = in || s.untracked
					case "DNAT":
						in = in || s.dnat
					case "SNAT":
						in = in || s.masquerade != ""
					case "ESTABLISHED", "RELATED", "INVALID":
						// Not the first packet of a valid connection.
					default:
						return unknown(m.Module + " state " + st + " is not evaluated")
					}
				}
				if !neg(o, in) {
					return nil, nil, false
				}
			}
		case "iprange":
			for _, o := range m.Options {
				a := s.pkt.Src
				switch o.Name {
				case "--src-range":
				case "--dst-range":
					a = s.dst
				default:
					return unknown("iprange " + o.Name + " is not evaluated")
				}
				in, err := inRange(a, o.Value())
				if err != nil {
					return unknown(err.Error())
				}
				if !neg(o, in) {
					return nil, nil, false
				}
			}
		case "pkttype":
			o, _ := m.Option("--pkt-type")
			if !neg(o, strings.EqualFold(o.Value(), packetType(s.dst))) {
				return nil, nil, false
			}
		case "statistic":
			mode, _ := m.Option("--mode")
			o, ok := m.Option("--probability")
			if mode.Value() != "random" || !ok {
				return unknown("statistic other than --mode random is not evaluated")
			}
			p, err := strconv.ParseFloat(o.Value(), 64)
			if err != nil {
				return unknown(err.Error())
			}
			if o.Negated {
				p = 1 - p
			}
			split = &p
		case "recent":
			name, _ := m.Option("--name")
			switch {
			case hasOption(m, "--rcheck") || hasOption(m, "--update"):
				secs, _ := m.Option("--seconds")
				affinity = fmt.Sprintf("the client has affinity to %s (seen within %ss)", name.Value(), secs.Value())
			case hasOption(m, "--set"):
				// Records the client for affinity; always matches.
			default:
				return unknown("recent without --rcheck, --update or --set is not evaluated")
			}
		default:
			return unknown("match " + m.Module + " is not evaluated")
		}
	}
	switch {
	case split != nil:
		yes, no = s.clone(), s
		yes.prob, no.prob = s.prob**split, s.prob*(1-*split)
		return yes, no, true
	case affinity != "":
		if s.condition != "" {
			// Affinity is checked before the split, once: a path that
			// already has one does not meet another.
			return nil, nil, false
		}
		yes, no = s.clone(), s
		yes.condition = affinity
		return yes, no, true
	}
	return s, nil, true
}

// iface is what the rules can know of an interface the packet crosses.
type iface struct {
	none bool   // the hook has no such interface
	name string // its name; "" when unknown, and then it is not lo
}

// iface returns the packet's in (-i) or out (-o) interface at the hook
// being walked: a packet from outside arrives on its InInterface (some
// interface other than lo when not given); one the host sends to itself
// leaves on lo and comes back in on it; anything else leaves on some
// interface other than lo (trace does not route).
func (t *tracer) iface(s *state, opt string) iface {
	hook := s.at.hook
	if opt == "-i" {
		switch {
		case hook == "OUTPUT" || hook == "POSTROUTING":
			return iface{none: true}
		case s.loopback:
			return iface{name: "lo"}
		}
		return iface{name: s.pkt.InInterface}
	}
	switch {
	case hook == "PREROUTING" || hook == "INPUT":
		return iface{none: true}
	case hook != "FORWARD" && s.pkt.Origin == backend.OriginLocal && t.local(s.dst):
		return iface{name: "lo"}
	}
	return iface{}
}

// matches reports whether the interface matches an -i/-o name (a final
// + is a wildcard), and whether that is known.
func (i iface) matches(pattern string) (m, known bool) {
	if i.none {
		return false, false
	}
	prefix, wild := strings.CutSuffix(pattern, "+")
	switch {
	case i.name != "" && wild:
		return strings.HasPrefix(i.name, prefix), true
	case i.name != "":
		return i.name == pattern, true
	case wild && prefix == "":
		return true, true
	case !wild && pattern == "lo":
		return false, true
	}
	return false, false
}

// addrType evaluates -m addrtype's address types: the host's addresses are
// LOCAL; other addresses are UNICAST but for multicast ones and the
// limited broadcast address (a subnet's broadcast address is taken as
// unicast: trace does not know the host's subnets).
func (t *tracer) addrType(a netip.Addr, types string) (bool, error) {
	got := "UNICAST"
	switch a = a.Unmap(); {
	case t.local(a):
		got = "LOCAL"
	case a.IsMulticast():
		got = "MULTICAST"
	case a == limitedBroadcast:
		got = "BROADCAST"
	}
	in := false
	for _, typ := range strings.Split(types, ",") {
		switch typ {
		case "LOCAL", "UNICAST", "MULTICAST", "BROADCAST":
			in = in || typ == got
		default:
			return false, fmt.Errorf("addrtype %s is not evaluated", typ)
		}
	}
	return in, nil
}

// packetType is -m pkttype's link-layer type of a packet to dst.
func packetType(dst netip.Addr) string {
	switch dst = dst.Unmap(); {
	case dst.IsMulticast():
		return "multicast"
	case dst == limitedBroadcast:
		return "broadcast"
	}
	return "unicast"
}

// tcpFlags are the TCP flag names of --tcp-flags.
var tcpFlags = map[string]uint8{"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20, "ECE": 0x40, "CWR": 0x80, "ALL": 0xff, "NONE": 0}

// synMatches evaluates --syn or --tcp-flags MASK COMP on a SYN.
func synMatches(o rules.Option) (bool, error) {
	if o.Name == "--syn" {
		return true, nil
	}
	if len(o.Values) != 2 {
		return false, fmt.Errorf("--tcp-flags %q", strings.Join(o.Values, " "))
	}
	var set [2]uint8
	for i, v := range o.Values {
		for _, f := range strings.Split(v, ",") {
			b, ok := tcpFlags[f]
			if !ok {
				return false, fmt.Errorf("--tcp-flags %q", strings.Join(o.Values, " "))
			}
			set[i] |= b
		}
	}
	const syn = 0x02
	return syn&set[0] == set[1], nil
}

func hasOption(m rules.Match, name string) bool {
	_, ok := m.Option(name)
	return ok
}

func inPrefix(a netip.Addr, v string) (bool, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		ip, err2 := netip.ParseAddr(v)
		if err2 != nil {
			return false, fmt.Errorf("address %q", v)
		}
		p = netip.PrefixFrom(ip, ip.BitLen())
	}
	a = a.Unmap()
	return a.Is4() == p.Addr().Is4() && p.Contains(a), nil
}

// protoNumbers are the protocol numbers -p accepts for the protocols a
// traced packet can have.
var protoNumbers = map[string]string{"6": "tcp", "17": "udp", "132": "sctp"}

// inRange evaluates an iprange range ("10.0.0.1-10.0.0.9").
func inRange(a netip.Addr, v string) (bool, error) {
	lo, hi, ok := strings.Cut(v, "-")
	l, err1 := netip.ParseAddr(lo)
	h, err2 := netip.ParseAddr(hi)
	if !ok || err1 != nil || err2 != nil {
		return false, fmt.Errorf("address range %q", v)
	}
	a = a.Unmap()
	return a.Is4() == l.Is4() && l.Compare(a) <= 0 && a.Compare(h) <= 0, nil
}

// inPortList evaluates multiport's list of ports and ranges ("22,80:90").
func inPortList(port int, v string) (bool, error) {
	for _, p := range strings.Split(v, ",") {
		in, err := inPortRange(port, p)
		if err != nil || in {
			return in, err
		}
	}
	return false, nil
}

func inPortRange(port int, v string) (bool, error) {
	lo, hi, isRange := strings.Cut(v, ":")
	l, err := strconv.Atoi(lo)
	if err != nil {
		return false, fmt.Errorf("port %q", v)
	}
	h := l
	if isRange {
		if h, err = strconv.Atoi(hi); err != nil {
			return false, fmt.Errorf("port %q", v)
		}
	}
	return port >= l && port <= h, nil
}
