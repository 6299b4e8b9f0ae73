package nftables

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// parseListing reads `nft list table` (or `nft list chain|set|map`, which
// print the same nesting around one object) into the model, canonical as
// the backend package says: each rule's text as listed, trimmed; each
// declaration in the form knftables' Fake dumps it inside braces (see
// chainDecl, setDecl); the elements of a set or map sorted, except those
// of a set declared "flags dynamic", which the kernel fills at run time
// (the affinity set) and are state, not rules. It returns nil when text
// holds no table.
//
// The text listing is read rather than the JSON one: rules can only be
// had as text (nft's JSON gives them as expression trees), and one
// listing costs half of two. What the text prints otherwise than it was
// written is undone here: base chain priorities by name ("dstnat - 10")
// become numbers, "policy accept" (the default, which knftables leaves
// out) goes, a timeout ("3h") becomes seconds, and the "size 65535" nft
// gives every dynamic set it was not given one for goes.
func parseListing(text string) (*backend.Table, error) {
	var tab *backend.Table
	var obj *backend.Chain
	var decl []string  // the object's declaration, as listed
	var elems []string // elements being read, while inElements
	inElements := false
	end := func() {
		if obj == nil {
			return
		}
		if obj.Kind == backend.KindChain {
			obj.Policy = chainDecl(decl)
		} else {
			obj.Policy = setDecl(decl)
			if !dynamic(decl) {
				for _, e := range elems {
					obj.Rules = append(obj.Rules, backend.NFTElementOf(obj.Name, e))
				}
				backend.SortElements(obj.Rules)
			}
		}
		obj, decl, elems = nil, nil, nil
	}
	for n, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		bad := func(why string) error { return fmt.Errorf("nft's listing, line %d: %s: %q", n+1, why, line) }
		if inElements {
			var done bool
			var err error
			elems, done, err = appendElements(elems, l)
			if err != nil {
				return nil, bad(err.Error())
			}
			inElements = !done
			continue
		}
		depth := len(line) - len(strings.TrimLeft(line, "\t"))
		switch {
		case l == "":
		case depth == 0 && strings.HasPrefix(l, "table ") && strings.HasSuffix(l, " {"):
			if tab != nil {
				return nil, bad("a second table")
			}
			f := strings.Fields(l)
			if len(f) != 4 {
				return nil, bad("not a table")
			}
			tab = &backend.Table{Name: f[2]}
		case depth == 0 && l == "}":
		case tab == nil:
			return nil, bad("outside a table")
		case depth == 1 && strings.HasSuffix(l, " {"):
			kind, name, ok := strings.Cut(strings.TrimSuffix(l, " {"), " ")
			k, known := kinds[kind]
			if !ok || !known {
				return nil, bad("not a chain, set or map")
			}
			obj = &backend.Chain{Name: name, Kind: k}
			tab.Chains = append(tab.Chains, obj)
		case depth == 1 && l == "}":
			end()
		case depth == 1 && strings.HasPrefix(l, "comment "):
			// the table's comment: svcnat writes its own, and reads none
		case obj == nil:
			return nil, bad("outside a chain, set or map")
		case obj.Kind == backend.KindChain && (strings.HasPrefix(l, "type ") && strings.Contains(l, " hook ") || strings.HasPrefix(l, "comment ")):
			decl = append(decl, l)
		case obj.Kind == backend.KindChain:
			obj.Rules = append(obj.Rules, backend.NFTRuleOf(obj.Name, l))
		case strings.HasPrefix(l, "elements = {"):
			var done bool
			var err error
			elems, done, err = appendElements(elems, strings.TrimPrefix(l, "elements = {"))
			if err != nil {
				return nil, bad(err.Error())
			}
			inElements = !done
		default:
			decl = append(decl, l)
		}
	}
	if obj != nil || inElements {
		return nil, fmt.Errorf("nft's listing ends inside %s %s", obj.Kind, obj.Name)
	}
	return tab, nil
}

var kinds = map[string]backend.Kind{"chain": backend.KindChain, "set": backend.KindSet, "map": backend.KindMap}

// appendElements appends the elements of one line of an "elements = { a,
// b, … }" listing to elems, and says whether the closing brace was on it.
// Elements are split at commas outside quotes: an element's comment may
// hold one.
func appendElements(elems []string, line string) ([]string, bool, error) {
	quoted, start := false, 0
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ',' || c == '}':
			if e := strings.TrimSpace(line[start:i]); e != "" {
				elems = append(elems, e)
			}
			start = i + 1
			if c == '}' {
				if strings.TrimSpace(line[i+1:]) != "" {
					return elems, true, fmt.Errorf("text after the elements")
				}
				return elems, true, nil
			}
		}
	}
	if quoted {
		return elems, false, fmt.Errorf("a quote not closed on its line")
	}
	if e := strings.TrimSpace(line[start:]); e != "" {
		elems = append(elems, e)
	}
	return elems, false, nil
}

// splitElements splits the body of "{ a, b }" into its elements.
func splitElements(body string) ([]string, error) {
	elems, _, err := appendElements(nil, body)
	return elems, err
}

// chainDecl is a chain's declaration as knftables writes it: "type nat
// hook prerouting priority -100 ;" with " policy drop ;" when it is not
// accept and " comment \"…\" ;" when it has one; "" for a plain chain.
// The listing prints "type nat hook prerouting priority dstnat; policy
// accept;" and the comment on a line of its own.
func chainDecl(lines []string) string {
	var base, comment string
	for _, l := range lines {
		if strings.HasPrefix(l, "comment ") {
			comment = l + " ;"
			continue
		}
		var parts []string
		for _, p := range strings.Split(strings.TrimSuffix(l, ";"), ";") {
			p = strings.TrimSpace(p)
			switch {
			case p == "policy accept", p == "":
			case strings.HasPrefix(p, "type "):
				if i := strings.Index(p, " priority "); i >= 0 {
					p = p[:i] + " priority " + priorityNumber(p[i+len(" priority "):])
				}
				fallthrough
			default:
				parts = append(parts, p+" ;")
			}
		}
		base = strings.Join(parts, " ")
	}
	return strings.TrimSpace(base + " " + comment)
}

// priorities are nft's standard priority names of the ip and ip6
// families, which the listing prints where the hook has one.
var priorities = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

// priorityNumber turns "dstnat - 10" into "-110"; a number, or what it
// cannot read, is returned as it is.
func priorityNumber(p string) string {
	f := strings.Fields(p)
	base, ok := priorities[f[0]]
	if !ok {
		return p
	}
	if len(f) == 3 {
		n, err := strconv.Atoi(f[2])
		switch {
		case err != nil:
			return p
		case f[1] == "+":
			base += n
		case f[1] == "-":
			base -= n
		default:
			return p
		}
	} else if len(f) != 1 {
		return p
	}
	return strconv.Itoa(base)
}

// setOrder is the order knftables writes a set's properties in.
var setOrder = []string{"type", "typeof", "flags", "timeout", "gc-interval", "size", "policy", "auto-merge", "comment"}

// setDecl is a set's or map's declaration as knftables writes it:
// "type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; comment
// \"…\" ;", from the listing's one property a line.
func setDecl(lines []string) string {
	props := map[string]string{}
	isDynamic := dynamic(lines)
	for _, l := range lines {
		key, _, _ := strings.Cut(l, " ")
		switch {
		case key == "timeout" || key == "gc-interval":
			l = key + " " + seconds(strings.TrimPrefix(l, key+" "))
		case l == "size 65535" && isDynamic:
			continue // nft's default for a dynamic set
		}
		props[key] = l + " ;"
	}
	var parts []string
	for _, k := range setOrder {
		if p, ok := props[k]; ok {
			parts = append(parts, p)
			delete(props, k)
		}
	}
	for _, l := range lines { // anything else, as listed
		key, _, _ := strings.Cut(l, " ")
		if p, ok := props[key]; ok {
			parts = append(parts, p)
			delete(props, key)
		}
	}
	return strings.Join(parts, " ")
}

// dynamic reports a set declared with "flags dynamic".
func dynamic(decl []string) bool {
	for _, l := range decl {
		if flags, ok := strings.CutPrefix(l, "flags "); ok {
			for _, f := range strings.Split(flags, ",") {
				if strings.TrimSpace(f) == "dynamic" {
					return true
				}
			}
		}
	}
	return false
}

// seconds turns nft's listed time ("3h", "1d2h", "90s") into seconds as
// knftables writes them ("10800s"); what it cannot read stays.
func seconds(t string) string {
	var total time.Duration
	rest := t
	if d, r, ok := strings.Cut(rest, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return t
		}
		total, rest = time.Duration(n)*24*time.Hour, r
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return t
		}
		total += d
	}
	return strconv.FormatInt(int64(total/time.Second), 10) + "s"
}
