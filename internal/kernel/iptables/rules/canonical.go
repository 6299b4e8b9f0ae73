package rules

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Canonicalize rewrites rule arguments, in any order iptables accepts, into
// the form iptables-save prints them back on both the legacy and the nft
// backend: -s -d -i -o -p first, addresses with their prefix length,
// matches in the order given with their options in the order the kernel
// module prints them, and the values the kernel normalises (probabilities,
// marks, REJECT's default, recent's defaults) as it echoes them. Rendered
// rules go through it once, so that a plan made right after an apply is
// empty. Canonical input comes back unchanged.
func Canonicalize(fam Family, args []string) ([]string, error) {
	p, err := parseArgs(args)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(args)+2)
	for h, name := range headerNames {
		o := p.header[h]
		if o.name == "" {
			continue
		}
		v := o.vals[0]
		if name == "-s" || name == "-d" {
			if v, err = canonicalPrefix(fam, v); err != nil {
				return nil, err
			}
		}
		if name == "-p" {
			v = strings.ToLower(v)
		}
		if o.neg {
			out = append(out, "!")
		}
		out = append(out, name, v)
	}
	for i := range p.matches {
		m := &p.matches[i]
		out = append(out, "-m", m.name)
		opts, err := canonicalMatch(fam, m)
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			out = o.appendTo(out)
		}
	}
	if p.target != "" {
		out = append(out, p.jump, p.target)
		opts, err := canonicalTarget(fam, p.target, p.targetOpts)
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			out = o.appendTo(out)
		}
	}
	return out, nil
}

// CanonicalRule is Canonicalize applied to a whole rule.
func CanonicalRule(fam Family, r Rule) (Rule, error) {
	args, err := Canonicalize(fam, r.Args)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %s: %w", r, err)
	}
	return Rule{Chain: r.Chain, Args: args}, nil
}

type option struct {
	neg  bool
	name string
	vals []string
}

// appendTo appends the option's tokens to out.
func (o option) appendTo(out []string) []string {
	if o.neg {
		out = append(out, "!")
	}
	out = append(out, o.name)
	return append(out, o.vals...)
}

type match struct {
	name string
	opts []option
}

// headerNames are the options iptables-save prints first, in its order;
// parsedArgs.header holds them at these indexes.
var headerNames = [...]string{"-s", "-d", "-i", "-o", "-p"}

func headerIndex(name string) int {
	for i, h := range headerNames {
		if h == name {
			return i
		}
	}
	return -1
}

type parsedArgs struct {
	header     [len(headerNames)]option // name "" when absent
	matches    []match
	jump       string // -j or -g
	target     string
	targetOpts []option
}

var longHeader = map[string]string{
	"--source": "-s", "--src": "-s", "--destination": "-d", "--dst": "-d",
	"--in-interface": "-i", "--out-interface": "-o", "--protocol": "-p",
	"--match": "-m", "--jump": "-j", "--goto": "-g",
}

func parseArgs(args []string) (parsedArgs, error) {
	var p parsedArgs
	fail := func(format string, a ...any) (parsedArgs, error) { return parsedArgs{}, fmt.Errorf(format, a...) }
	cur := -1 // the match options go to, an index of p.matches
	neg := false
	inTarget := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if l, ok := longHeader[a]; ok {
			a = l
		}
		if a == "!" {
			neg = true
			continue
		}
		// values of an option: the following tokens up to the next option
		vals := func() []string {
			j := i + 1
			for j < len(args) && args[j] != "!" && !(strings.HasPrefix(args[j], "-") && len(args[j]) > 1 && !isNumber(args[j])) {
				j++
			}
			v := args[i+1 : j]
			i = j - 1
			return v
		}
		switch {
		case a == "-s" || a == "-d" || a == "-i" || a == "-o" || a == "-p":
			v := vals()
			if len(v) != 1 {
				return fail("%s takes one value", a)
			}
			p.header[headerIndex(a)] = option{neg: neg, name: a, vals: v}
		case a == "-m":
			v := vals()
			if len(v) != 1 || neg {
				return fail("-m takes one module name")
			}
			p.matches = append(p.matches, match{name: v[0]})
			cur = len(p.matches) - 1
		case a == "-j" || a == "-g":
			v := vals()
			if len(v) != 1 || neg {
				return fail("%s takes one target", a)
			}
			p.jump, p.target, inTarget = a, v[0], true
		case strings.HasPrefix(a, "--"):
			o := option{neg: neg, name: a, vals: vals()}
			switch {
			case inTarget:
				p.targetOpts = append(p.targetOpts, o)
			case cur >= 0:
				p.matches[cur].opts = append(p.matches[cur].opts, o)
			default:
				// iptables loads the protocol's match implicitly for
				// --dport and friends given without -m.
				proto := p.header[headerIndex("-p")]
				if proto.name == "" {
					return fail("option %s outside of a match", a)
				}
				p.matches = append(p.matches, match{name: strings.ToLower(proto.vals[0]), opts: []option{o}})
				cur = len(p.matches) - 1
			}
		default:
			return fail("unexpected argument %q", a)
		}
		neg = false
	}
	if neg {
		return fail("dangling !")
	}
	return p, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func canonicalPrefix(fam Family, s string) (string, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return "", fmt.Errorf("bad address %q", s)
		}
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Errorf("bad prefix %q", s)
	}
	return pfx.Masked().String(), nil
}

// optionOrder returns the options sorted by the order in which the module
// prints them; options it does not know keep their place after known ones.
func optionOrder(opts []option, order ...string) []option {
	out := make([]option, 0, len(opts))
	for _, n := range order {
		for _, o := range opts {
			if o.name == n {
				out = append(out, o)
			}
		}
	}
	for _, o := range opts {
		if !slices.Contains(order, o.name) {
			out = append(out, o)
		}
	}
	return out
}

func canonicalMatch(fam Family, m *match) ([]option, error) {
	switch m.name {
	case "tcp", "udp", "sctp":
		return optionOrder(m.opts, "--sport", "--source-port", "--dport", "--destination-port"), nil
	case "addrtype":
		return optionOrder(m.opts, "--src-type", "--dst-type"), nil
	case "statistic":
		opts := optionOrder(m.opts, "--mode", "--probability", "--every", "--packet")
		for i, o := range opts {
			if o.name == "--probability" && len(o.vals) == 1 {
				f, err := strconv.ParseFloat(o.vals[0], 64)
				if err != nil {
					return nil, fmt.Errorf("bad probability %q", o.vals[0])
				}
				opts[i].vals = []string{FormatProbability(f)}
			}
		}
		return opts, nil
	case "mark":
		opts := append([]option(nil), m.opts...)
		for i, o := range opts {
			if o.name == "--mark" && len(o.vals) == 1 {
				v, err := canonicalMark(o.vals[0], false)
				if err != nil {
					return nil, err
				}
				opts[i].vals = []string{v}
			}
		}
		return opts, nil
	case "recent":
		return canonicalRecent(fam, m.opts), nil
	}
	return m.opts, nil
}

// FormatProbability prints p as iptables-save does: the kernel keeps
// p*2^31 as an integer and iptables prints it back with 11 decimals.
func FormatProbability(p float64) string {
	stored := math.Round(p * 0x80000000)
	return strconv.FormatFloat(stored/0x80000000, 'f', 11, 64)
}

func parseUint32(s string) (uint64, error) {
	return strconv.ParseUint(s, 0, 32)
}

// canonicalMark prints value[/mask] in hex as the mark match does, dropping
// a full mask.
func canonicalMark(s string, keepFullMask bool) (string, error) {
	val, mask, hasMask := strings.Cut(s, "/")
	v, err := parseUint32(val)
	if err != nil {
		return "", fmt.Errorf("bad mark %q", s)
	}
	m := uint64(0xffffffff)
	if hasMask {
		if m, err = parseUint32(mask); err != nil {
			return "", fmt.Errorf("bad mark %q", s)
		}
	}
	if m == 0xffffffff && !keepFullMask {
		return fmt.Sprintf("%#x", v), nil
	}
	return fmt.Sprintf("%#x/%#x", v, m), nil
}

func canonicalRecent(fam Family, opts []option) []option {
	out := optionOrder(opts, "--set", "--rcheck", "--update", "--remove", "--seconds", "--reap",
		"--hitcount", "--rttl", "--name", "--mask", "--rsource", "--rdest")
	has := func(n string) bool {
		for _, o := range out {
			if o.name == n {
				return true
			}
		}
		return false
	}
	var tail []option
	if !has("--name") {
		tail = append(tail, option{name: "--name", vals: []string{"DEFAULT"}})
	}
	if !has("--mask") {
		mask := "255.255.255.255"
		if fam == IPv6 {
			mask = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
		}
		tail = append(tail, option{name: "--mask", vals: []string{mask}})
	}
	if !has("--rsource") && !has("--rdest") {
		tail = append(tail, option{name: "--rsource"})
	}
	if len(tail) > 0 {
		out = optionOrder(append(out, tail...), "--set", "--rcheck", "--update", "--remove", "--seconds", "--reap",
			"--hitcount", "--rttl", "--name", "--mask", "--rsource", "--rdest")
	}
	return out
}

func canonicalTarget(fam Family, target string, opts []option) ([]option, error) {
	switch target {
	case "MARK":
		out := make([]option, 0, len(opts))
		for _, o := range opts {
			if len(o.vals) != 1 {
				out = append(out, o)
				continue
			}
			val, _, _ := strings.Cut(o.vals[0], "/")
			v, err := parseUint32(val)
			if err != nil {
				return nil, fmt.Errorf("bad mark %q", o.vals[0])
			}
			switch o.name {
			case "--or-mark":
				out = append(out, option{name: "--set-xmark", vals: []string{fmt.Sprintf("%#x/%#x", v, v)}})
			case "--xor-mark":
				out = append(out, option{name: "--set-xmark", vals: []string{fmt.Sprintf("%#x/0x0", v)}})
			case "--and-mark":
				out = append(out, option{name: "--set-xmark", vals: []string{fmt.Sprintf("0x0/%#x", ^uint32(v))}})
			case "--set-mark", "--set-xmark":
				s, err := canonicalMark(o.vals[0], true)
				if err != nil {
					return nil, err
				}
				out = append(out, option{name: "--set-xmark", vals: []string{s}})
			default:
				out = append(out, o)
			}
		}
		return out, nil
	case "REJECT":
		if len(opts) == 0 {
			with := "icmp-port-unreachable"
			if fam == IPv6 {
				with = "icmp6-port-unreachable"
			}
			return []option{{name: "--reject-with", vals: []string{with}}}, nil
		}
	}
	return opts, nil
}
