// Package rules is svcnat's one model of iptables rules: tables, chains and
// rules, the iptables-save parser and writer, and the canonicalizer that turns
// a rule as it is written into the form the kernel echoes back. The renderer,
// the planner, the applier and the fakes all share it, so desired and live
// rules are the same type and compare as values. It never runs a binary.
package rules

import (
	"bufio"
	"io"
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

// Families are the IP families, in the order svcnat handles them.
var Families = []Family{IPv4, IPv6}

// Tables svcnat writes, in the order kube-proxy writes them.
const (
	TableFilter = "filter"
	TableNAT    = "nat"
)

// MaxChainNameLen is iptables' limit on chain names
// (XT_EXTENSION_MAXNAMELEN - 1).
const MaxChainNameLen = 28

// hookOrder lists the built-in chains in kernel (hook) order.
var hookOrder = map[string]int{"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3, "POSTROUTING": 4}

// tableBuiltins lists each table's built-in chains in kernel order.
var tableBuiltins = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// IsBuiltinChain reports whether name is one of the kernel's built-in chains.
func IsBuiltinChain(name string) bool {
	_, ok := hookOrder[name]
	return ok
}

// BuiltinChains returns the built-in chains the kernel gives table, in
// kernel order, and whether it knows the table.
func BuiltinChains(table string) ([]string, bool) {
	c, ok := tableBuiltins[table]
	return c, ok
}

// Rule is one rule: the chain it is appended to and its arguments, as
// tokens without quoting. Args are canonical once they went through
// Canonicalize or came from iptables-save.
type Rule struct {
	Chain string
	Args  []string
}

// String prints the rule as an iptables-save line, quoting as it does.
func (r Rule) String() string {
	var b strings.Builder
	r.write(&b, "-A", 0)
	return b.String()
}

// write prints the rule as the restore command cmd ("-A", "-I", "-D"), with
// a position when pos > 0, quoting its arguments as iptables-save does.
func (r Rule) write(b textWriter, cmd string, pos int) {
	b.WriteString(cmd)
	b.WriteByte(' ')
	b.WriteString(r.Chain)
	if pos > 0 {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(pos))
	}
	for i, a := range r.Args {
		b.WriteByte(' ')
		if i > 0 && r.Args[i-1] == "--comment" {
			b.WriteString(saveString(a))
		} else if a == "" || strings.ContainsAny(a, " \t'\"\\") {
			b.WriteString(quote(a))
		} else {
			b.WriteString(a)
		}
	}
}

// saveString prints a comment as iptables' xtables_save_string does: bare
// when it holds only [_-0-9a-zA-Z], else quoted with " \ and ' escaped.
func saveString(s string) string {
	if s != "" && strings.Trim(s, "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
		return s
	}
	return quote(s)
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' || s[i] == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Equal reports whether r and o are the same rule: the same chain and
// arguments (rules in canonical form compare as written).
func (r Rule) Equal(o Rule) bool {
	if r.Chain != o.Chain || len(r.Args) != len(o.Args) {
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

// Target returns the rule's jump or goto target, or "" when it has none.
func (r Rule) Target() string {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "-j" || r.Args[i] == "-g" || r.Args[i] == "--jump" || r.Args[i] == "--goto" {
			return r.Args[i+1]
		}
	}
	return ""
}

// Comment returns the value of the rule's comment match, or "".
func (r Rule) Comment() string {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "--comment" {
			return r.Args[i+1]
		}
	}
	return ""
}

// Chain is a chain and its rules in order. Policy is "-" for a user chain
// and ACCEPT/DROP for a built-in one, as iptables-save prints it.
type Chain struct {
	Name   string
	Policy string
	Rules  []Rule
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

// Ruleset is every table of one family.
type Ruleset struct {
	Family Family
	Tables []*Table
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

func sortChains(chains []*Chain) {
	sort.SliceStable(chains, func(i, j int) bool {
		a, b := chains[i], chains[j]
		ab, bb := a.Builtin(), b.Builtin()
		if ab != bb {
			return ab
		}
		if ab {
			return hookOrder[a.Name] < hookOrder[b.Name]
		}
		return a.Name < b.Name
	})
}

// textWriter is what the writers here write to: a strings.Builder or a
// bufio.Writer.
type textWriter interface {
	WriteString(s string) (int, error)
	WriteByte(c byte) error
}

// WriteSave writes the ruleset as iptables-save prints it (without the
// "# Generated" comments and counters): every chain declared, then its rules.
func (rs *Ruleset) WriteSave(w io.Writer) error {
	b := bufio.NewWriterSize(w, 1<<16)
	for _, t := range rs.Tables {
		writeSaveTable(b, t.Name, t.Chains)
	}
	return b.Flush()
}

// WriteRestore writes the ruleset as an iptables-restore --noflush payload
// (see Restore): user chains are declared, which creates or flushes them;
// built-in chains are not, which would reset their policy; every rule is
// appended.
func (rs *Ruleset) WriteRestore(w io.Writer) error {
	var r Restore
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if !c.Builtin() {
				r.Declare(t.Name, c.Name)
			}
		}
		for _, c := range t.Chains {
			for _, rule := range c.Rules {
				r.Append(t.Name, rule)
			}
		}
	}
	bw := bufio.NewWriter(w)
	bw.Write(r.Bytes())
	return bw.Flush()
}

// writeSaveTable writes one table as iptables-save does: its chains
// declared with their policies, then their rules.
func writeSaveTable(b textWriter, table string, chains []*Chain) {
	b.WriteString("*" + table + "\n")
	for _, c := range chains {
		policy := c.Policy
		if !c.Builtin() {
			policy = "-"
		}
		b.WriteString(":" + c.Name + " " + policy + " [0:0]\n")
	}
	for _, c := range chains {
		for _, r := range c.Rules {
			r.write(b, "-A", 0)
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
}
