package backend

import (
	"bytes"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Family is an IP family: IPv4 rules go through iptables, IPv6 through ip6tables.
type Family int

// The families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Key names the family in files and JSON: "ipv4" or "ipv6".
func (f Family) Key() string { return strings.ToLower(f.String()) }

// ParseFamily is the family whose Key is key.
func ParseFamily(key string) (Family, bool) {
	for _, f := range Families {
		if f.Key() == key {
			return f, true
		}
	}
	return 0, false
}

// Families are the IP families, in the order svcnat handles them.
var Families = []Family{IPv4, IPv6}

// IsBuiltinChain reports whether name is one of the kernel's built-in chains.
func IsBuiltinChain(name string) bool {
	return chainRank(name) < userChain
}

// Rule is one rule: the chain it is appended to and its arguments, as
// tokens without quoting. Args are canonical once they went through
// Canonicalize or came from iptables-save.
//
// On nftables (Form NFTRule, NFTElement) a Rule is one rule of a chain or
// one element of a set or map: Chain names the chain, set or map, and
// Args holds one string, the rule or the element as nft lists it
// ("ip daddr . meta l4proto . th dport vmap @service-ips",
// "10.32.0.61 . tcp . 80 : goto service-…"): nft's grammar has no tokens
// an iptables-style argument list would help with.
type Rule struct {
	Chain string
	Args  []string
	Form  Form
}

// Form is the language a Rule is written in.
type Form uint8

// The forms of a rule.
const (
	// IPTablesRule: an iptables rule, "-A CHAIN args…".
	IPTablesRule Form = iota
	// NFTRule: a rule of an nftables chain, "rule CHAIN text".
	NFTRule
	// NFTElement: an element of an nftables set or map,
	// "element SET { text }".
	NFTElement
)

// NFTRuleOf is the nftables rule text of chain.
func NFTRuleOf(chain, text string) Rule {
	return Rule{Chain: chain, Args: []string{text}, Form: NFTRule}
}

// NFTElementOf is the element text of a set or map.
func NFTElementOf(set, text string) Rule {
	return Rule{Chain: set, Args: []string{text}, Form: NFTElement}
}

// Text is an nftables rule's or element's text (Args' one string); "" for
// an iptables rule.
func (r Rule) Text() string {
	if r.Form == IPTablesRule || len(r.Args) == 0 {
		return ""
	}
	return r.Args[0]
}

// String prints the rule as an iptables-save line, quoting as it does; an
// nftables rule as "rule CHAIN text" and an element as "element SET {
// text }", nft's own words without the family and table the views print
// above them.
func (r Rule) String() string {
	switch r.Form {
	case NFTRule:
		return "rule " + r.Chain + " " + r.Text()
	case NFTElement:
		return "element " + r.Chain + " { " + r.Text() + " }"
	}
	return string(r.AppendText(nil, "-A", 0))
}

// AppendText appends the rule as the restore command cmd ("-A", "-I",
// "-D") to dst, with a position when pos > 0, quoting its arguments as
// iptables-save does.
func (r Rule) AppendText(dst []byte, cmd string, pos int) []byte {
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = append(dst, r.Chain...)
	if pos > 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(pos), 10)
	}
	for i, a := range r.Args {
		dst = append(dst, ' ')
		switch {
		case i > 0 && r.Args[i-1] == "--comment" && bareComment(a):
			dst = append(dst, a...)
		case i > 0 && r.Args[i-1] == "--comment", a == "" || needsQuotes(a):
			dst = appendQuoted(dst, a)
		default:
			dst = append(dst, a...)
		}
	}
	return dst
}

// The quoting below is iptables-save's, appended in place: a plan's
// fingerprint and every payload and generation print every rule, 250,000
// of them at 10,000 services, so none of it may allocate or call through
// an interface per token.

// bareComment reports whether iptables' xtables_save_string prints the
// comment s bare: when it holds only [_-0-9a-zA-Z].
func bareComment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// needsQuotes reports whether an argument other than a comment must be
// quoted: it holds a blank, a tab or a quote or backslash character.
func needsQuotes(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\'', '"', '\\':
			return true
		}
	}
	return false
}

// appendQuoted appends s in double quotes with " \ and ' escaped.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\')
			start = i
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Equal reports whether r and o are the same rule: the same chain and
// arguments (rules in canonical form compare as written).
func (r Rule) Equal(o Rule) bool {
	if r.Chain != o.Chain || r.Form != o.Form || len(r.Args) != len(o.Args) {
		return false
	}
	for i := range r.Args {
		if r.Args[i] != o.Args[i] {
			return false
		}
	}
	return true
}

// Size is about how many bytes the rule takes as a restore line: exactly,
// but for the quotes of quoted arguments.
func (r Rule) Size() int {
	n := len("-A \n") + len(r.Chain)
	for _, a := range r.Args {
		n += len(a) + 1
	}
	return n
}

// EqualRules reports whether a and b hold equal rules in the same order.
func EqualRules(a, b []Rule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// Target returns the rule's jump or goto target, or "" when it has none
// (or, on nftables, when it has several: a verdict map's).
func (r Rule) Target() string {
	if r.Form != IPTablesRule {
		return nftTarget(r.Text())
	}
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "-j" || r.Args[i] == "-g" || r.Args[i] == "--jump" || r.Args[i] == "--goto" {
			return r.Args[i+1]
		}
	}
	return ""
}

// Comment returns the value of the rule's comment match, or "".
func (r Rule) Comment() string {
	if r.Form != IPTablesRule {
		return nftComment(r.Text())
	}
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "--comment" {
			return r.Args[i+1]
		}
	}
	return ""
}

// Arg is the value of the rule's option name where it is not negated
// ("-p", "--dport", "--to-destination"), "" when the rule has none: the
// quick read of one option, for code that reads every rule of a large
// ruleset (rules.ParseSpec parses the whole rule).
func (r Rule) Arg(name string) string {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == name && (i == 0 || r.Args[i-1] != "!") {
			return r.Args[i+1]
		}
	}
	return ""
}

// Chain is a chain and its rules in order. Policy is "-" for a user chain
// and ACCEPT/DROP for a built-in one, as iptables-save prints it.
//
// On nftables a Chain is any object of a table that holds lines: a chain
// of rules, or a set or a map of elements (Kind). Policy is then the
// object's declaration as nft reads it inside braces, "" for none: a base
// chain's "type nat hook prerouting priority -100 ;", a set's "type
// ipv4_addr ; comment \"…\" ;". Elements are kept in the order
// SortElements gives, as a set has none of its own.
type Chain struct {
	Name   string
	Policy string
	Rules  []Rule
	Kind   Kind
}

// Kind is what an nftables object holding lines is. iptables has chains
// only.
type Kind uint8

// The kinds.
const (
	KindChain Kind = iota
	KindSet
	KindMap
)

func (k Kind) String() string {
	switch k {
	case KindSet:
		return "set"
	case KindMap:
		return "map"
	}
	return "chain"
}

// Builtin reports whether the chain is one of the kernel's built-in chains.
func (c *Chain) Builtin() bool { return IsBuiltinChain(c.Name) }

// Table is one table (filter, nat, ...) and its chains in dump order.
type Table struct {
	Name   string
	Chains []*Chain

	// index finds chains by name; a dump of 10,000 services has 30,000
	// chains, and a linear search per rule made parsing quadratic. It is
	// rebuilt when Chains grew or shrank behind its back; chains are never
	// renamed in place.
	index map[string]*Chain
}

// Chain returns the named chain or nil.
func (t *Table) Chain(name string) *Chain {
	if len(t.index) != len(t.Chains) {
		t.index = make(map[string]*Chain, len(t.Chains))
		for _, c := range t.Chains {
			t.index[c.Name] = c
		}
	}
	return t.index[name]
}

// EnsureChain returns the named chain, appending it when missing.
func (t *Table) EnsureChain(name string) *Chain {
	if c := t.Chain(name); c != nil {
		return c
	}
	policy := "-"
	if IsBuiltinChain(name) {
		policy = "ACCEPT"
	}
	c := &Chain{Name: name, Policy: policy}
	t.Chains = append(t.Chains, c)
	if t.index != nil {
		t.index[name] = c
	}
	return c
}

// Append adds a rule to its chain, creating the chain when missing.
func (t *Table) Append(r Rule) {
	c := t.EnsureChain(r.Chain)
	c.Rules = append(c.Rules, r)
}

// Ruleset is every table of one family, in one language: iptables (the
// zero Syntax) or nftables, whose rulesets a backend reads and renders
// holding only svcnat's own table.
type Ruleset struct {
	Family Family
	Tables []*Table
	Syntax Syntax
}

// Syntax is the language a ruleset is written in.
type Syntax uint8

// The syntaxes.
const (
	IPTables Syntax = iota
	NFTables
)

// NFTTable is the nftables table the owner of prefix owns in each family:
// the prefix in lower case ("SVCNAT": ip svcnat, ip6 svcnat), as
// kube-proxy's nftables mode owns the tables called kube-proxy.
func NFTTable(prefix string) string { return strings.ToLower(prefix) }

// NFTFamily is fam as nft names it: "ip" or "ip6".
func NFTFamily(fam Family) string {
	if fam == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Owns reports whether chain of table belongs to the owner of prefix, in
// rs's language: on iptables OwnsIn, on nftables every object of the
// owner's table (NFTTable).
func (rs *Ruleset) Owns(prefix, table, chain string) bool {
	if rs != nil && rs.Syntax == NFTables {
		return table == NFTTable(prefix)
	}
	return OwnsIn(prefix, table, chain)
}

// Table returns the named table or nil.
func (rs *Ruleset) Table(name string) *Table {
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// EnsureTable returns the named table, appending it when missing.
func (rs *Ruleset) EnsureTable(name string) *Table {
	if t := rs.Table(name); t != nil {
		return t
	}
	t := &Table{Name: name}
	rs.Tables = append(rs.Tables, t)
	return t
}

// RuleCount counts the rules of every table.
func (rs *Ruleset) RuleCount() int {
	n := 0
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

// SortChains orders each table's chains as legacy iptables-save does:
// built-in chains first in kernel order, then user chains by name. Dumps of
// the two backends then compare equal.
func (rs *Ruleset) SortChains() {
	for _, t := range rs.Tables {
		sortChains(t.Chains)
	}
}

// sortChains sorts chains as SortChains says, in place.
func sortChains(chains []*Chain) { slices.SortStableFunc(chains, compareChains) }

// sortedChains is chains as SortChains orders them: chains itself when
// they are in order already (legacy iptables-save lists them so), else a
// sorted copy. A plan's fingerprint and every generation print 60,000
// chains at 10,000 services.
func sortedChains(chains []*Chain) []*Chain {
	if slices.IsSortedFunc(chains, compareChains) {
		return chains
	}
	out := slices.Clone(chains)
	sortChains(out)
	return out
}

// compareChains orders built-in chains first, in hook order, then user
// chains by name.
func compareChains(a, b *Chain) int {
	ra, rb := chainRank(a.Name), chainRank(b.Name)
	if ra != rb || ra < userChain {
		return ra - rb
	}
	return strings.Compare(a.Name, b.Name)
}

// chainRank is a built-in chain's place in the kernel's hook order, and
// userChain for any other chain. A switch, not a map: it runs at every
// comparison of a sort of 60,000 chains.
func chainRank(name string) int {
	switch name {
	case "PREROUTING":
		return 0
	case "INPUT":
		return 1
	case "FORWARD":
		return 2
	case "OUTPUT":
		return 3
	case "POSTROUTING":
		return 4
	}
	return userChain
}

// userChain ranks user chains after the built-in ones.
const userChain = 5

// textSink collects text in a buffer and, with a writer, hands it on in
// 64 KiB pieces, so that writing 25 MB of rules holds little of it.
type textSink struct {
	buf []byte
	w   io.Writer
	err error
}

func (t *textSink) flush(final bool) {
	if t.w == nil || len(t.buf) < 1<<16 && !final {
		return
	}
	if t.err == nil {
		_, t.err = t.w.Write(t.buf)
	}
	// After a failed write the rest is dropped as it comes: nothing of it
	// can reach the writer, and holding it would hold the whole ruleset.
	t.buf = t.buf[:0]
}

// WriteSave writes the ruleset as iptables-save prints it (without the
// "# Generated" comments and counters): every chain declared, then its rules.
func (rs *Ruleset) WriteSave(w io.Writer) error {
	t := &textSink{buf: make([]byte, 0, 1<<17), w: w}
	for _, tab := range rs.Tables {
		t.saveTable(tab.Name, tab.Chains)
	}
	t.flush(true)
	return t.err
}

// saveTable writes one table as iptables-save does: its chains declared
// with their policies, then their rules.
func (t *textSink) saveTable(table string, chains []*Chain) {
	t.buf = append(append(append(t.buf, '*'), table...), '\n')
	for _, c := range chains {
		policy := c.Policy
		if !c.Builtin() {
			policy = "-"
		}
		t.buf = append(append(append(append(append(t.buf, ':'), c.Name...), ' '), policy...), " [0:0]\n"...)
		t.flush(false)
	}
	for _, c := range chains {
		for _, r := range c.Rules {
			t.buf = append(r.AppendText(t.buf, "-A", 0), '\n')
			t.flush(false)
		}
	}
	t.buf = append(t.buf, "COMMIT\n"...)
}

// Owns reports whether chain, in a table svcnat writes (OwnsTable),
// belongs to the owner of prefix: svcnat owns exactly the chains named
// PREFIX-… of nat and filter (and its jumps into them from built-in
// chains; see Owned), except the canary. Where the table is at hand,
// OwnsIn says it whole.
func Owns(prefix, chain string) bool {
	n := len(prefix)
	return len(chain) > n && chain[n] == '-' && chain[:n] == prefix && chain[n+1:] != canary
}

// OwnsTable reports whether svcnat writes table: nat and filter only. A
// chain of the prefix in any other table (mangle, raw, security) is never
// svcnat's, whatever its name: kube-proxy's KUBE-PROXY-CANARY in mangle
// under the prefix KUBE, say.
func OwnsTable(table string) bool { return table == "nat" || table == "filter" }

// OwnsIn reports whether chain of table belongs to the owner of prefix:
// Owns, in a table svcnat writes.
func OwnsIn(prefix, table, chain string) bool { return OwnsTable(table) && Owns(prefix, chain) }

const canary = "CANARY"

// Canary names prefix's canary chain: an empty chain that svcnat reconcile
// keeps in every table it writes, so that a flush of the table (iptables
// -F, firewalld --reload) shows at once, as kube-proxy's KUBE-PROXY-CANARY
// does. It is svcnat's, but no plan holds it: Owns leaves it out, so plan,
// apply and show beside the daemon neither see nor remove it.
func Canary(prefix string) string { return prefix + "-" + canary }

// NFTCanary is the canary chain of svcnat's nftables table. It holds one
// rule (CanaryAt): `nft flush table` empties chains but keeps them, so an
// empty one would not show a flush.
const NFTCanary = "canary"

// CanaryAt is where reconcile keeps one canary: a chain of a table, with
// the rules it must hold.
type CanaryAt struct {
	Table, Chain string
	Rules        []Rule
}

// Canaries are the canaries of prefix in each family of a backend whose
// rulesets are in syntax: on iptables an empty chain in nat and in
// filter (Canary), on nftables one chain in svcnat's table.
func Canaries(syntax Syntax, prefix string) []CanaryAt {
	if syntax == NFTables {
		return []CanaryAt{{Table: NFTTable(prefix), Chain: NFTCanary, Rules: []Rule{NFTRuleOf(NFTCanary, "return")}}}
	}
	return []CanaryAt{{Table: "nat", Chain: Canary(prefix)}, {Table: "filter", Chain: Canary(prefix)}}
}

// Owned returns the part of rs the owner of prefix owns: every chain of
// nat and filter named with the prefix, and, in their built-in chains,
// only the rules that jump into such a chain (see OwnsIn). Everything else (Docker's, firewalld's, the operator's
// rules) is left out, and so is never compared, rewritten or removed.
// Tables and chains keep rs's order; a built-in chain appears only when it
// holds an owned jump. The owned chains are rs's own, shared, not copied:
// neither may be changed afterwards.
func (rs *Ruleset) Owned(prefix string) *Ruleset {
	out := &Ruleset{Family: rs.Family, Syntax: rs.Syntax}
	if rs.Syntax == NFTables {
		// A table is the owner's whole (but its canary, which no plan
		// holds), and no other table can jump into it: nft has no jumps
		// between tables.
		if t := rs.Table(NFTTable(prefix)); t != nil {
			if t.Chain(NFTCanary) != nil {
				t = &Table{Name: t.Name, Chains: slices.DeleteFunc(slices.Clone(t.Chains), func(c *Chain) bool { return c.Name == NFTCanary })}
			}
			out.Tables = []*Table{t}
		}
		return out
	}
	for _, t := range rs.Tables {
		if !OwnsTable(t.Name) {
			continue
		}
		var ot *Table
		ensure := func() *Table {
			if ot == nil {
				ot = out.EnsureTable(t.Name)
			}
			return ot
		}
		for _, c := range t.Chains {
			switch {
			case Owns(prefix, c.Name):
				ot := ensure()
				ot.Chains = append(ot.Chains, c)
			case c.Builtin():
				for _, r := range c.Rules {
					if Owns(prefix, r.Target()) {
						ensure().Append(r)
					}
				}
			}
		}
	}
	return out
}

// Foreign returns the complement of Owned: what the owner of prefix must
// never change. Only the jumps into owned chains from built-in chains are
// owned; a jump into an owned chain from any other chain (an operator's
// "-A MYCHAIN -j SVCNAT-SEP-X") is foreign and kept here, and it pins that
// chain: iptables refuses to delete a chain something still jumps to.
func (rs *Ruleset) Foreign(prefix string) *Ruleset {
	out := &Ruleset{Family: rs.Family, Syntax: rs.Syntax}
	if rs.Syntax == NFTables {
		for _, t := range rs.Tables {
			if t.Name != NFTTable(prefix) {
				out.Tables = append(out.Tables, t.Clone())
			}
		}
		return out
	}
	for _, t := range rs.Tables {
		ft := out.EnsureTable(t.Name)
		if !OwnsTable(t.Name) {
			ft.Chains = append(ft.Chains, t.Clone().Chains...)
			continue
		}
		for _, c := range t.Chains {
			if Owns(prefix, c.Name) {
				continue
			}
			fc := ft.EnsureChain(c.Name)
			fc.Policy = c.Policy
			for _, r := range c.Rules {
				if !c.Builtin() || !Owns(prefix, r.Target()) {
					fc.Rules = append(fc.Rules, r)
				}
			}
		}
	}
	return out
}

// Clone copies the ruleset's tables, chains and rule lists, so that the
// copy can be changed without changing rs. Rule arguments are shared: no
// code changes a Rule's Args in place.
func (rs *Ruleset) Clone() *Ruleset {
	out := &Ruleset{Family: rs.Family, Syntax: rs.Syntax, Tables: make([]*Table, 0, len(rs.Tables))}
	for _, t := range rs.Tables {
		out.Tables = append(out.Tables, t.Clone())
	}
	return out
}

// Clone copies the table's chains and rule lists (see Ruleset.Clone).
func (t *Table) Clone() *Table {
	out := &Table{Name: t.Name, Chains: make([]*Chain, 0, len(t.Chains))}
	for _, c := range t.Chains {
		out.Chains = append(out.Chains, &Chain{Name: c.Name, Policy: c.Policy, Kind: c.Kind, Rules: append([]Rule(nil), c.Rules...)})
	}
	return out
}

// Text prints the ruleset in iptables-save form with tables sorted by name
// and chains as SortChains orders them, so that the same rules print the
// same bytes whatever order a backend listed them in. It is the form
// rules are compared, digested and recorded in. A nil ruleset prints as "".
func (rs *Ruleset) Text() string {
	t := &textSink{}
	rs.writeText(t)
	return string(t.buf)
}

// WriteText writes Text to w as it is made, for rulesets too large to
// hold twice.
func (rs *Ruleset) WriteText(w io.Writer) error {
	t := &textSink{buf: make([]byte, 0, 1<<17), w: w}
	rs.writeText(t)
	t.flush(true)
	return t.err
}

func (rs *Ruleset) writeText(t *textSink) {
	if rs == nil {
		return
	}
	tables := append([]*Table(nil), rs.Tables...)
	sort.Slice(tables, func(i, j int) bool { return tables[i].Name < tables[j].Name })
	for _, tab := range tables {
		if rs.Syntax == NFTables {
			t.nftTable(rs.Family, tab.Name, sortedChains(tab.Chains))
			continue
		}
		t.saveTable(tab.Name, sortedChains(tab.Chains))
	}
}

// ChainRef names a chain of a table.
type ChainRef struct{ Table, Chain string }

// ScanText names the non-built-in chains a ruleset's text form (Text, as
// generations keep it) declares and counts its rules, without parsing
// them: history counts every kept generation, and a cold start's holds
// 60,000 chains. On nftables it names every chain, set and map and
// counts rules and elements.
func ScanText(data []byte) (chains []ChainRef, nrules int) {
	table := ""
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		switch {
		case len(line) > 1 && line[0] == '*':
			table = string(bytes.TrimSpace(line[1:]))
		case len(line) > 1 && line[0] == ':':
			name, _, _ := strings.Cut(string(line[1:]), " ")
			if !IsBuiltinChain(name) {
				chains = append(chains, ChainRef{table, name})
			}
		case bytes.HasPrefix(line, []byte("-A ")):
			nrules++
		case bytes.HasPrefix(line, []byte("add ")):
			f := strings.SplitN(string(line), " ", 6)
			switch {
			case len(f) < 5:
			case f[1] == "chain" || f[1] == "set" || f[1] == "map":
				chains = append(chains, ChainRef{f[3], f[4]})
			case f[1] == "rule" || f[1] == "element":
				nrules++
			}
		}
	}
	return chains, nrules
}
