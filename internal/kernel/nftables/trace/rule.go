package trace

import (
	"fmt"
	"strconv"
	"strings"
)

// A rule is read into ops, evaluated left to right as the kernel runs a
// rule's expressions: a match that fails ends the rule (the next rule
// runs), a statement changes the packet, a verdict ends it.
type opKind uint8

const (
	opMatch       opKind = iota // a test of the packet (match)
	opLookup                    // key in a set: named (@set) or anonymous ({ … }), or equal to a value
	opVmap                      // key looked up in a verdict map
	opNumgenVmap                // numgen random mod N vmap { i : verdict, … }
	opNumgenMatch               // numgen random mod N V: true with probability 1/N
	opMarkSet                   // meta mark set …
	opUpdate                    // update @set { … }: records the packet in a set
	opDNAT                      // dnat to …
	opSNAT                      // snat to …
	opMasquerade                // masquerade
	opVerdict                   // accept, drop, reject, return, jump, goto
)

// op is one expression or statement of a rule.
type op struct {
	kind  opKind
	match func(t *tracer, s *state) (bool, error)
	// key is what a lookup or vmap reads from the packet ("ip daddr .
	// meta l4proto . th dport" → daddr, l4proto, dport).
	key []selector
	// set is a named set or map (without @); elems an anonymous one's
	// elements (or a value compared for equality).
	set   string
	elems []element
	neg   bool
	// mod is numgen's modulus, offset its offset.
	mod, offset int
	// markOp is '=' (set), '|', '^' or '&'; markVal its operand.
	markOp  byte
	markVal uint32
	verdict verdict
	// to is a dnat or snat target: one address[:port] (to), or a numgen
	// map of them (mod, elems, or the named map set); with key, the named
	// map is keyed by key's values and numgen's pick (a dispatch chain's).
	to string
	// timeout is an update's "timeout …" for the element it records.
	timeout string
}

// verdict is how a rule ends the chain it is in, when it does.
type verdict struct {
	kind  string // accept, drop, reject, return, jump, goto, continue
	chain string // for jump and goto
	// via is the comment of the verdict map element that gave it: a
	// chainless port's service-ips element names its service port there,
	// which the path shows beside the dispatch chain it goes to.
	via string
}

// selector is one part of a key a rule reads from the packet.
type selector string

const (
	selSaddr   selector = "saddr"
	selDaddr   selector = "daddr"
	selL4proto selector = "l4proto"
	selDport   selector = "dport"
	selMark    selector = "mark"
	// constPrefix starts a constant key part: "numgen random mod 1
	// offset K" is always K, the one constant nft 1.0.6 admits in a
	// concatenation (the affinity set's endpoint slot).
	constPrefix = "const:"
)

// element is one element of a set or map: its key's parts, the value
// of a map element, and its comment.
type element struct {
	key     []string
	value   string
	comment string
}

// tokens splits rule text into words, keeping a quoted string and a
// braced group ("{ a, b }", nested braces included) as one word each.
func tokens(text string) ([]string, error) {
	var out []string
	for i := 0; i < len(text); {
		switch c := text[i]; {
		case c == ' ':
			i++
		case c == '"':
			j := i + 1
			for j < len(text) && text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(text) {
				return nil, fmt.Errorf("unterminated string")
			}
			out = append(out, text[i:j+1])
			i = j + 1
		case c == '{':
			depth, j := 0, i
			for ; j < len(text); j++ {
				if text[j] == '{' {
					depth++
				} else if text[j] == '}' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(text) {
				return nil, fmt.Errorf("unbalanced braces")
			}
			out = append(out, text[i:j+1])
			i = j + 1
		default:
			j := strings.IndexByte(text[i:], ' ')
			if j < 0 {
				j = len(text) - i
			}
			out = append(out, text[i:i+j])
			i += j
		}
	}
	return out, nil
}

// parseRule reads a rule as nft lists it into ops. What it cannot read
// is an error saying so: the rule is then not evaluated.
func parseRule(text string) ([]op, error) {
	toks, err := tokens(text)
	if err != nil {
		return nil, err
	}
	p := &ruleParser{toks: toks}
	for !p.done() {
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	return p.ops, nil
}

type ruleParser struct {
	toks []string
	i    int
	ops  []op
}

func (p *ruleParser) done() bool { return p.i >= len(p.toks) }

func (p *ruleParser) peek(k int) string {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return ""
}

func (p *ruleParser) take() string {
	t := p.peek(0)
	p.i++
	return t
}

// notEvaluated is the error for words trace does not evaluate.
func notEvaluated(words ...string) error {
	return fmt.Errorf("%s is not evaluated", strings.Join(words, " "))
}

// next reads one expression or statement.
func (p *ruleParser) next() error {
	switch w := p.peek(0); w {
	case "comment":
		p.i += 2
	case "counter":
		p.i++
		if p.peek(0) == "packets" && p.peek(2) == "bytes" {
			p.i += 4
		}
	case "ip", "ip6", "meta", "th", "tcp", "udp", "sctp":
		return p.keyed()
	case "fib":
		return p.fib()
	case "ct":
		return p.ct()
	case "numgen":
		if p.peek(4) != "vmap" && p.peek(6) != "vmap" {
			return p.keyed()
		}
		mod, offset, err := p.numgen()
		if err != nil {
			return err
		}
		if p.take() != "vmap" {
			return notEvaluated("numgen other than with vmap { … }")
		}
		elems, err := parseAnonymous(p.take(), 1)
		if err != nil {
			return err
		}
		p.ops = append(p.ops, op{kind: opNumgenVmap, mod: mod, offset: offset, elems: elems})
	case "update", "add":
		p.i++
		set, ok := strings.CutPrefix(p.take(), "@")
		if !ok || !strings.HasPrefix(p.peek(0), "{") {
			return notEvaluated(w, "other than of a named set")
		}
		o := op{kind: opUpdate, set: set}
		if f := strings.Fields(strings.Trim(p.take(), "{}")); len(f) > 2 && f[len(f)-2] == "timeout" {
			o.timeout = f[len(f)-1]
		}
		p.ops = append(p.ops, o)
	case "dnat", "snat":
		return p.nat()
	case "masquerade":
		p.i++
		for p.peek(0) == "fully-random" || p.peek(0) == "random" || p.peek(0) == "persistent" {
			p.i++
		}
		if p.peek(0) == "to" {
			return notEvaluated("masquerade to")
		}
		p.ops = append(p.ops, op{kind: opMasquerade})
	case "reject":
		p.i++
		if p.peek(0) == "with" {
			// with icmp type X, icmpv6 type X, icmpx type X, tcp reset
			p.i++
			if p.take() == "tcp" {
				p.i++
			} else {
				p.i += 2
			}
		}
		p.ops = append(p.ops, op{kind: opVerdict, verdict: verdict{kind: "reject"}})
	case "accept", "drop", "return", "continue":
		p.i++
		p.ops = append(p.ops, op{kind: opVerdict, verdict: verdict{kind: w}})
	case "jump", "goto":
		p.i++
		p.ops = append(p.ops, op{kind: opVerdict, verdict: verdict{kind: w, chain: p.take()}})
	case "log":
		// Logging changes nothing on the way; its options are skipped.
		p.i++
		for opt := p.peek(0); opt == "prefix" || opt == "level" || opt == "group" || opt == "snaplen" || opt == "queue-threshold" || opt == "flags"; opt = p.peek(0) {
			p.i += 2
		}
	default:
		return notEvaluated(w)
	}
	return nil
}

// keyed reads an expression that starts with a key: a comparison, a set
// lookup, a verdict map, or a mark statement.
func (p *ruleParser) keyed() error {
	if p.peek(0) == "meta" && p.peek(1) == "mark" {
		return p.mark()
	}
	if p.peek(0) == "meta" && p.peek(1) == "nftrace" && p.peek(2) == "set" {
		p.i += 4 // tracing changes nothing on the way
		return nil
	}
	var key []selector
	var proto string // a tcp dport … key implies the protocol
	var gen *op      // a key of numgen random mod N (N > 1) alone
	for {
		if p.peek(0) == "numgen" {
			mod, offset, err := p.numgen()
			if err != nil {
				return err
			}
			if mod == 1 {
				key = append(key, selector(constPrefix+strconv.Itoa(offset)))
			} else {
				gen = &op{kind: opNumgenMatch, mod: mod, offset: offset}
				key = append(key, "numgen")
			}
			if p.peek(0) != "." {
				break
			}
			p.i++
			continue
		}
		a, b := p.take(), p.take()
		var sel selector
		switch {
		case (a == "ip" || a == "ip6") && (b == "saddr" || b == "daddr"):
			sel = selector(b)
		case a == "meta" && b == "l4proto", a == "ip" && b == "protocol", a == "ip6" && b == "nexthdr":
			sel = selL4proto
		case a == "th" && b == "dport":
			sel = selDport
		case (a == "tcp" || a == "udp" || a == "sctp") && b == "dport":
			sel, proto = selDport, a
		default:
			return notEvaluated(a, b)
		}
		key = append(key, sel)
		if p.peek(0) != "." {
			break
		}
		p.i++
	}
	if proto != "" {
		p.ops = append(p.ops, op{kind: opMatch, match: func(_ *tracer, s *state) (bool, error) { return s.pkt.Proto == proto, nil }})
	}
	if gen != nil {
		// "numgen random mod N V": one value of N, compared alone.
		v := p.take()
		n, err := strconv.Atoi(v)
		if len(key) != 1 || err != nil || n < gen.offset || n >= gen.offset+gen.mod {
			return notEvaluated("numgen random mod", strconv.Itoa(gen.mod), "other than equal to one of its values")
		}
		p.ops = append(p.ops, *gen)
		return nil
	}
	o := op{kind: opLookup, key: key}
	switch p.peek(0) {
	case "vmap":
		p.i++
		o.kind = opVmap
	case "map":
		return notEvaluated("map outside a statement")
	case "!=":
		p.i++
		o.neg = true
	case "==":
		p.i++
	}
	v := p.take()
	switch {
	case v == "":
		return notEvaluated("a key without a value")
	case strings.HasPrefix(v, "@"):
		o.set = v[1:]
	case strings.HasPrefix(v, "{"):
		elems, err := parseAnonymous(v, len(key))
		if err != nil {
			return err
		}
		o.elems = elems
	default:
		// One value, or a concatenation of values "a . b".
		parts := []string{v}
		for p.peek(0) == "." {
			parts = append(parts, p.peek(1))
			p.i += 2
		}
		if o.kind == opVmap || len(parts) != len(key) {
			return notEvaluated("a value of another shape than its key")
		}
		o.elems = []element{{key: parts}}
	}
	p.ops = append(p.ops, o)
	return nil
}

// mark reads "meta mark set …" and "meta mark [& M] [==|!=] V".
func (p *ruleParser) mark() error {
	p.i += 2
	if p.peek(0) == "set" {
		p.i++
		if p.peek(0) == "meta" && p.peek(1) == "mark" {
			opr := p.peek(2)
			if opr != "|" && opr != "^" && opr != "&" {
				return notEvaluated("meta mark set meta mark", opr)
			}
			v, err := parseUint32(p.peek(3))
			if err != nil {
				return err
			}
			p.i += 4
			p.ops = append(p.ops, op{kind: opMarkSet, markOp: opr[0], markVal: v})
			return nil
		}
		v, err := parseUint32(p.take())
		if err != nil {
			return err
		}
		p.ops = append(p.ops, op{kind: opMarkSet, markOp: '=', markVal: v})
		return nil
	}
	mask := uint32(0xffffffff)
	if p.peek(0) == "&" {
		m, err := parseUint32(p.peek(1))
		if err != nil {
			return err
		}
		mask = m
		p.i += 2
	}
	neg := false
	switch p.peek(0) {
	case "!=":
		neg = true
		p.i++
	case "==":
		p.i++
	}
	v, err := parseUint32(p.take())
	if err != nil {
		return err
	}
	p.ops = append(p.ops, op{kind: opMatch, match: func(_ *tracer, s *state) (bool, error) {
		return (s.mark&mask == v) != neg, nil
	}})
	return nil
}

// fib reads "fib saddr|daddr type [!=] TYPE", the address types the
// host's addresses decide.
func (p *ruleParser) fib() error {
	which, typ := p.peek(1), p.peek(2)
	if (which != "saddr" && which != "daddr") || typ != "type" {
		return notEvaluated("fib", which, typ)
	}
	p.i += 3
	neg := false
	if p.peek(0) == "!=" {
		neg = true
		p.i++
	}
	want := strings.Trim(p.take(), "{}")
	var types []string
	for _, w := range strings.Split(want, ",") {
		if w = strings.TrimSpace(w); w != "" {
			types = append(types, w)
		}
	}
	for _, w := range types {
		switch w {
		case "local", "unicast", "multicast", "broadcast":
		default:
			return notEvaluated("fib type", w)
		}
	}
	p.ops = append(p.ops, op{kind: opMatch, match: func(t *tracer, s *state) (bool, error) {
		a := s.pkt.Src
		if which == "daddr" {
			a = s.dst
		}
		got := t.addrType(a)
		in := false
		for _, w := range types {
			in = in || w == got
		}
		return in != neg, nil
	}})
	return nil
}

// ct reads "ct state [!=] STATES" and "ct status [!=] STATUS": the first
// packet of a connection is new; its status is dnat after a DNAT.
func (p *ruleParser) ct() error {
	what := p.peek(1)
	if what != "state" && what != "status" {
		return notEvaluated("ct", what)
	}
	p.i += 2
	neg := false
	if p.peek(0) == "!=" {
		neg = true
		p.i++
	}
	var vals []string
	for _, v := range strings.Split(strings.Trim(p.take(), "{}"), ",") {
		if v = strings.TrimSpace(v); v != "" {
			vals = append(vals, v)
		}
	}
	for _, v := range vals {
		switch {
		case what == "state" && (v == "new" || v == "established" || v == "related" || v == "invalid" || v == "untracked"):
		case what == "status" && (v == "dnat" || v == "snat"):
		default:
			return notEvaluated("ct", what, v)
		}
	}
	p.ops = append(p.ops, op{kind: opMatch, match: func(_ *tracer, s *state) (bool, error) {
		in := false
		for _, v := range vals {
			switch v {
			case "new":
				in = true // trace follows a connection's first packet
			case "dnat":
				in = in || s.dnat
			case "snat":
				in = in || s.masquerade != ""
			}
		}
		return in != neg, nil
	}})
	return nil
}

// numgen reads "numgen random mod N [offset K]".
func (p *ruleParser) numgen() (mod, offset int, err error) {
	if p.peek(1) != "random" || p.peek(2) != "mod" {
		return 0, 0, notEvaluated("numgen", p.peek(1))
	}
	mod, err = strconv.Atoi(p.peek(3))
	if err != nil || mod <= 0 {
		return 0, 0, fmt.Errorf("numgen modulus %q", p.peek(3))
	}
	p.i += 4
	if p.peek(0) == "offset" {
		if offset, err = strconv.Atoi(p.peek(1)); err != nil {
			return 0, 0, fmt.Errorf("numgen offset %q", p.peek(1))
		}
		p.i += 2
	}
	return mod, offset, nil
}

// nat reads "dnat|snat [ip|ip6] to TARGET [flags]": TARGET is an
// address[:port] or "numgen random mod N [offset K] map { i : addr .
// port, … }" or "… map @name" (an endpoints map).
func (p *ruleParser) nat() error {
	kind := opDNAT
	if p.take() == "snat" {
		kind = opSNAT
	}
	if p.peek(0) == "ip" || p.peek(0) == "ip6" {
		p.i++
	}
	if p.take() != "to" {
		return notEvaluated("nat without to")
	}
	o := op{kind: kind}
	if kind == opDNAT && p.peek(0) != "numgen" && p.peek(2) == "." {
		return p.keyedNAT(o)
	}
	if p.peek(0) == "numgen" {
		mod, offset, err := p.numgen()
		if err != nil {
			return err
		}
		if p.take() != "map" {
			return notEvaluated("numgen other than with a map")
		}
		o.mod, o.offset = mod, offset
		if m, ok := strings.CutPrefix(p.peek(0), "@"); ok {
			p.i++
			o.set = m
		} else {
			elems, err := parseAnonymous(p.take(), 1)
			if err != nil {
				return err
			}
			o.elems = elems
		}
	} else {
		o.to = p.take()
		if o.to == "" || strings.HasPrefix(o.to, "@") || p.peek(0) == "map" || p.peek(0) == "." {
			return notEvaluated("nat to", o.to, p.peek(0))
		}
	}
	for p.peek(0) == "fully-random" || p.peek(0) == "random" || p.peek(0) == "persistent" {
		p.i++
	}
	p.ops = append(p.ops, o)
	return nil
}

// keyedNAT reads a dispatch chain's target (render's dispatch): "ip
// daddr . tcp dport . numgen random mod N map @name", an element of the
// named map keyed by the packet's destination and numgen's pick. A "tcp
// dport" in the key matches the protocol, as in keyed.
func (p *ruleParser) keyedNAT(o op) error {
	proto := ""
	for p.peek(0) != "numgen" {
		a, b := p.take(), p.take()
		switch {
		case (a == "ip" || a == "ip6") && b == "daddr":
			o.key = append(o.key, selDaddr)
		case a == "th" && b == "dport":
			o.key = append(o.key, selDport)
		case (a == "tcp" || a == "udp" || a == "sctp") && b == "dport":
			o.key, proto = append(o.key, selDport), a
		default:
			return notEvaluated("nat to", a, b)
		}
		if p.take() != "." {
			return notEvaluated("nat to a key without numgen")
		}
	}
	mod, offset, err := p.numgen()
	if err != nil {
		return err
	}
	m, ok := strings.CutPrefix(p.peek(1), "@")
	if p.peek(0) != "map" || !ok {
		return notEvaluated("a keyed nat other than from a named map")
	}
	p.i += 2
	o.mod, o.offset, o.set = mod, offset, m
	if proto != "" {
		p.ops = append(p.ops, op{kind: opMatch, match: func(_ *tracer, s *state) (bool, error) { return s.pkt.Proto == proto, nil }})
	}
	p.ops = append(p.ops, o)
	return nil
}

// parseAnonymous reads "{ e, e, … }", each element of keyLen parts.
func parseAnonymous(group string, keyLen int) ([]element, error) {
	body, ok := strings.CutPrefix(group, "{")
	body, ok2 := strings.CutSuffix(body, "}")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%q is not a { … } group", group)
	}
	var out []element
	for _, e := range strings.Split(body, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		el := parseElement(e)
		if len(el.key) != keyLen {
			return nil, fmt.Errorf("element %q: want %d parts", e, keyLen)
		}
		out = append(out, el)
	}
	return out, nil
}

// parseElement reads an element as nft lists it: "k . k [comment "…"]
// [: value]", a live dynamic set's "timeout …" and "expires …" aside.
func parseElement(text string) element {
	var el element
	key, value, isMap := strings.Cut(text, " : ")
	if isMap {
		el.value = strings.TrimSpace(value)
	}
	if i := strings.Index(key, ` comment "`); i >= 0 {
		c, err := strconv.Unquote(strings.TrimSpace(key[i+len(" comment "):]))
		if err == nil {
			el.comment = c
		}
		key = key[:i]
	}
	for _, w := range []string{" timeout ", " expires "} {
		if i := strings.Index(key, w); i >= 0 {
			key = key[:i]
		}
	}
	for _, part := range strings.Split(key, " . ") {
		el.key = append(el.key, strings.TrimSpace(part))
	}
	return el
}

// verdictOf reads a verdict map's value ("goto service-…", "drop").
func verdictOf(v string) (verdict, error) {
	w, chain, _ := strings.Cut(v, " ")
	switch w {
	case "accept", "drop", "return", "continue":
		if chain == "" {
			return verdict{kind: w}, nil
		}
	case "jump", "goto":
		if chain != "" && !strings.Contains(chain, " ") {
			return verdict{kind: w, chain: chain}, nil
		}
	}
	return verdict{}, fmt.Errorf("verdict %q is not evaluated", v)
}

func parseUint32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("number %q", s)
	}
	return uint32(v), nil
}
