// Package rules is the iptables backend's own syntax for the seam's rule
// model (package backend): the iptables-save parser, the canonicalizer
// that turns a rule as it is written into the form the kernel echoes
// back, a rule's arguments parsed whole (ParseSpec), iptables-restore
// payloads, and iptables' tables and name limits. It never runs a binary.
package rules

import (
	"bufio"
	"io"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// The rule model is the seam's (package backend): a rule, a chain, a
// table and a family's ruleset are the same values on every backend. The
// aliases keep this package's parser, canonicalizer and writers reading as
// they did.
type (
	Family  = backend.Family
	Rule    = backend.Rule
	Chain   = backend.Chain
	Table   = backend.Table
	Ruleset = backend.Ruleset
)

// The families (backend.IPv4, backend.IPv6).
const (
	IPv4 = backend.IPv4
	IPv6 = backend.IPv6
)

// Tables svcnat writes, in the order kube-proxy writes them.
const (
	TableFilter = "filter"
	TableNAT    = "nat"
)

// MaxChainNameLen is iptables' limit on chain names
// (XT_EXTENSION_MAXNAMELEN - 1).
const MaxChainNameLen = 28

// tableBuiltins lists each table's built-in chains in kernel order.
var tableBuiltins = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// BuiltinChains returns the built-in chains the kernel gives table, in
// kernel order, and whether it knows the table.
func BuiltinChains(table string) ([]string, bool) {
	c, ok := tableBuiltins[table]
	return c, ok
}

// WriteRestore writes rs as an iptables-restore --noflush payload
// (see Restore): user chains are declared, which creates or flushes them;
// built-in chains are not, which would reset their policy; every rule is
// appended.
func WriteRestore(rs *Ruleset, w io.Writer) error {
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
