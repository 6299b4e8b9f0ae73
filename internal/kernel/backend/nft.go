package backend

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The text form of an nftables ruleset (Ruleset.Text with Syntax
// NFTables) is nft's own input, one object a line, in the order knftables'
// Fake dumps a table, which is also an order nft -f can load from nothing:
//
//	add table ip svcnat
//	add chain ip svcnat services
//	add chain ip svcnat nat-prerouting { type nat hook prerouting priority -100 ; }
//	add set ip svcnat cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
//	add map ip svcnat service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
//	add rule ip svcnat services ip daddr . meta l4proto . th dport vmap @service-ips
//	add element ip svcnat cluster-ips { 10.32.0.61 }
//
// chains by name, then sets, then maps, then each chain's rules in order,
// then the elements of sets and maps. Generations, saved plans and the
// fingerprint keep it; ParseNFT reads it back.

// nftTable writes one table in the text form above.
func (t *textSink) nftTable(fam Family, table string, objects []*Chain) {
	prefix := NFTFamily(fam) + " " + table + " "
	t.buf = append(append(append(t.buf, "add table "...), prefix[:len(prefix)-1]...), '\n')
	objects = slices.Clone(objects)
	slices.SortStableFunc(objects, func(a, b *Chain) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	for _, c := range objects {
		t.buf = append(append(append(append(append(t.buf, "add "...), c.Kind.String()...), ' '), prefix...), c.Name...)
		if c.Policy != "" {
			t.buf = append(append(append(t.buf, " { "...), c.Policy...), " }"...)
		}
		t.buf = append(t.buf, '\n')
		t.flush(false)
	}
	for _, c := range objects {
		for _, r := range c.Rules {
			t.buf = appendNFTLine(t.buf, prefix, r)
			t.flush(false)
		}
	}
}

// appendNFTLine appends r as an "add rule" or "add element" line of the
// table prefix ("ip svcnat ").
func appendNFTLine(dst []byte, prefix string, r Rule) []byte {
	if r.Form == NFTElement {
		dst = append(append(append(append(dst, "add element "...), prefix...), r.Chain...), " { "...)
		return append(append(dst, r.Text()...), " }\n"...)
	}
	dst = append(append(append(append(dst, "add rule "...), prefix...), r.Chain...), ' ')
	return append(append(dst, r.Text()...), '\n')
}

// NFTLine is r as a line of nft's input for family fam's table ("add
// rule ip svcnat services …", "add element ip svcnat cluster-ips { … }").
func NFTLine(fam Family, table string, r Rule) string {
	return strings.TrimSuffix(string(appendNFTLine(nil, NFTFamily(fam)+" "+table+" ", r)), "\n")
}

// SortElements puts a set's or a map's elements in the order svcnat keeps
// them in: by their text. A set has no order, and the kernel lists an
// element where its hash puts it; sorted, desired and live compare line
// by line.
func SortElements(rules []Rule) {
	slices.SortFunc(rules, func(a, b Rule) int { return strings.Compare(a.Text(), b.Text()) })
}

// ParseNFT reads one family's ruleset from the text form above. A line it
// cannot read is an error naming it.
func ParseNFT(fam Family, r io.Reader) (*Ruleset, error) {
	rs := &Ruleset{Family: fam, Syntax: NFTables}
	kinds := map[string]Kind{"chain": KindChain, "set": KindSet, "map": KindMap}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<26)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("line %d: %s: %q", n, why, line) }
		f := strings.SplitN(line, " ", 6)
		if len(f) < 4 || f[0] != "add" {
			return nil, bad("not an nft add command")
		}
		if f[2] != NFTFamily(fam) {
			return nil, bad("not of family " + NFTFamily(fam))
		}
		tab := rs.EnsureTable(f[3])
		if f[1] == "table" {
			continue
		}
		if len(f) < 5 {
			return nil, bad("no name")
		}
		name, rest := f[4], ""
		if len(f) == 6 {
			rest = f[5]
		}
		if k, ok := kinds[f[1]]; ok {
			if tab.Chain(name) != nil {
				return nil, bad(f[1] + " declared twice")
			}
			c := tab.EnsureChain(name)
			c.Kind, c.Policy = k, ""
			if rest != "" {
				body, ok := braced(rest)
				if !ok {
					return nil, bad("a declaration is \"{ … }\"")
				}
				c.Policy = body
			}
			continue
		}
		c := tab.Chain(name)
		switch {
		case c == nil:
			return nil, bad(name + " is not declared before")
		case f[1] == "rule" && c.Kind == KindChain && rest != "":
			c.Rules = append(c.Rules, NFTRuleOf(name, rest))
		case f[1] == "element" && c.Kind != KindChain:
			body, ok := braced(rest)
			if !ok {
				return nil, bad("an element is \"{ … }\"")
			}
			c.Rules = append(c.Rules, NFTElementOf(name, body))
		default:
			return nil, bad("not a rule of a chain or an element of a set or map")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// braced is s's content between "{ " and " }".
func braced(s string) (string, bool) {
	if !strings.HasPrefix(s, "{ ") || !strings.HasSuffix(s, " }") || len(s) < 4 {
		return "", false
	}
	return s[2 : len(s)-2], true
}

// nftTarget is the chain an nft rule jumps or goes to: the word after its
// one "jump" or "goto" verdict; "" when it has none, or several (a
// verdict map's).
func nftTarget(text string) string {
	target := ""
	for _, verb := range []string{"jump ", "goto "} {
		for rest := text; ; {
			i := strings.Index(rest, verb)
			if i < 0 {
				break
			}
			if i == 0 || rest[i-1] == ' ' {
				if target != "" {
					return ""
				}
				name, _, _ := strings.Cut(rest[i+len(verb):], " ")
				target = strings.TrimRight(name, ",}")
			}
			rest = rest[i+len(verb):]
		}
	}
	return target
}

// nftComment is the text of an nft rule's trailing `comment "…"`.
func nftComment(text string) string {
	i := strings.LastIndex(text, ` comment "`)
	if i < 0 || !strings.HasSuffix(text, `"`) {
		return ""
	}
	c, err := strconv.Unquote(text[i+len(" comment "):])
	if err != nil {
		return ""
	}
	return c
}

// NFTReferences are the objects a rule or an element names: the chains its
// jump and goto verdicts go to (every one, an anonymous vmap's included)
// and the sets and maps it looks up (@name).
func NFTReferences(r Rule) []string {
	text := r.Text()
	if r.Form == NFTElement {
		_, value := SplitNFTElement(text)
		text = value
	}
	var out []string
	words := strings.Fields(text)
	for i, w := range words {
		switch {
		case (w == "jump" || w == "goto") && i+1 < len(words):
			out = append(out, strings.TrimRight(words[i+1], ",}"))
		case strings.HasPrefix(w, "@"):
			out = append(out, strings.TrimRight(w[1:], ",}"))
		}
	}
	return out
}

// SplitNFTElement splits an element's text into its key (without its
// comment) and its value, "" for a set's: "a . b comment \"c\" : goto x"
// gives "a . b" and "goto x".
func SplitNFTElement(text string) (key, value string) {
	quoted := false
	end := -1
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case end < 0 && strings.HasPrefix(text[i:], " comment "):
			end = i
		case strings.HasPrefix(text[i:], " : "):
			if end < 0 {
				end = i
			}
			return text[:end], text[i+3:]
		}
	}
	if end < 0 {
		end = len(text)
	}
	return text[:end], ""
}

// NFTReferrers returns changes with, added, an Update that rewrites in place
// every live chain, set or map of live that refers to an object the
// changes make again (a declaration changed, or a Delete and a Create of
// one name) and that the changes do not touch already. nft cannot change
// a declaration: the object is deleted and added again, and the kernel
// refuses to delete what a rule or an element still names, so those are
// flushed and written again in the same transaction. The planner's diff
// does not know this (the referring rules did not change), so it is the
// planner's to add them on nftables (planner.New).
func NFTReferrers(live *Ruleset, changes []ChainChange) []ChainChange {
	remade, touched := map[string]bool{}, map[string]bool{}
	deleted := map[string]bool{}
	for _, c := range changes {
		touched[c.Chain] = true
		if c.Action == Delete {
			deleted[c.Chain] = true
		}
	}
	for _, c := range changes {
		if c.SpecChanged() || c.Action == Create && deleted[c.Chain] {
			remade[c.Chain] = true
		}
	}
	if len(remade) == 0 || live == nil {
		return changes
	}
	out := slices.Clone(changes)
	for _, t := range live.Tables {
		for _, c := range t.Chains {
			if touched[c.Name] || !nftRefersTo(c.Rules, remade) {
				continue
			}
			out = append(out, ChainChange{Family: live.Family, Table: t.Name, Chain: c.Name, Action: Update,
				Before: c.Rules, After: c.Rules, Diff: []DiffRun{{Op: DiffEqual, N: len(c.Rules)}},
				Kind: c.Kind, SpecBefore: c.Policy, SpecAfter: c.Policy})
		}
	}
	return out
}

func nftRefersTo(rules []Rule, names map[string]bool) bool {
	for _, r := range rules {
		for _, name := range NFTReferences(r) {
			if names[name] {
				return true
			}
		}
	}
	return false
}
