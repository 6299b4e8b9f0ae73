package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/rules"
)

// matches evaluates r's matches on s. It returns the state that matches
// (nil when none does) and, for a split, the state that does not: a
// random split gives each its share of s's probability; an affinity check
// (-m recent --rcheck) makes the matching state conditional. ok is false
// when the rule does not match at all, or cannot be evaluated (then s
// records it).
func (t *tracer) matches(s *state, r rules.Rule, sp rules.Spec) (yes, no *state, ok bool) {
	unknown := func(why string) (*state, *state, bool) {
		s.unknown = append(s.unknown, fmt.Sprintf("%s (%s)", r, why))
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
		if !neg(o, p == s.pkt.Proto || p == "all" || p == "0") {
			return nil, nil, false
		}
	}
	if sp.InInterface.Name != "" || sp.OutInterface.Name != "" {
		return unknown("interfaces are not evaluated")
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
				default:
					return unknown(m.Module + " " + o.Name + " is not evaluated")
				}
			}
		case "addrtype":
			for _, o := range m.Options {
				switch o.Name {
				case "--src-type", "--dst-type":
					if o.Value() != "LOCAL" {
						return unknown("addrtype " + o.Value() + " is not evaluated")
					}
					a := s.pkt.Src
					if o.Name == "--dst-type" {
						a = s.dst
					}
					if !neg(o, t.local(a)) {
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
		case "conntrack":
			for _, o := range m.Options {
				if o.Name != "--ctstate" {
					return unknown("conntrack " + o.Name + " is not evaluated")
				}
				in := false
				for _, st := range strings.Split(o.Value(), ",") {
					switch st {
					case "NEW":
						in = true // the first packet of a connection
					case "DNAT":
						in = in || s.dnat
					case "ESTABLISHED", "RELATED", "INVALID", "SNAT", "UNTRACKED":
					default:
						return unknown("ctstate " + st + " is not evaluated")
					}
				}
				if !neg(o, in) {
					return nil, nil, false
				}
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
