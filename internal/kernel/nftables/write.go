package nftables

import (
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// transactions is Kernel.Transactions of the runner and the Fake: staged
// transactions, each creating at most batch objects (chains, sets, maps)
// nothing live references yet, then the final one. Staging pays because
// one nf_tables transaction is super-linear in the objects it creates (see
// limits). A base chain is never staged: it is live, hooked into
// traffic, the moment it exists; every other object created is reachable
// only through objects created with it or changed in the final
// transaction. Objects come in creationOrder, so that every staged
// transaction loads on its own.
func transactions(fam backend.Family, changes []backend.ChainChange, batch int) (stages []*backend.Transaction, final *backend.Transaction) {
	return backend.StageTransactions(fam, creationOrder(changes), batch, stageable)
}

// stageable reports a created object a staged transaction may create: any
// but a base chain.
func stageable(c *backend.ChainChange) bool {
	return c.Action == backend.Create && !isBaseChain(c.Kind, c.SpecAfter)
}

func isBaseChain(k backend.Kind, decl string) bool {
	return k == backend.KindChain && strings.Contains(decl, " hook ")
}

// creationOrder returns changes with the created objects first, each after
// every created object it refers to (a chain's rules' jumps, gotos and
// @sets, a map's verdicts: backend.DependencyOrder), then the rest in the
// order given.
func creationOrder(changes []backend.ChainChange) []*backend.ChainChange {
	var created, rest []*backend.ChainChange
	for i := range changes {
		c := &changes[i]
		if c.Action == backend.Create {
			created = append(created, c)
		} else {
			rest = append(rest, c)
		}
	}
	ordered := backend.DependencyOrder(created, func(c *backend.ChainChange) []backend.ChainRef {
		var refs []backend.ChainRef
		for _, r := range c.After {
			for _, name := range backend.NFTReferences(r) {
				refs = append(refs, backend.ChainRef{Table: c.Table, Chain: name})
			}
		}
		return refs
	})
	return append(ordered, rest...)
}

// script collects an nft -f script and counts its lines.
type script struct {
	buf   []byte
	lines int
	// elems is the element statement being collected: its head ("add
	// element ip svcnat service-ips") and how many elements it holds.
	elemHead string
	elems    int
}

// elementsPerStatement is how many elements one add or delete element
// statement carries. One statement per element cost nft 1.0.6 a third
// more time and half again the memory at internal/bench's 10,000
// services × 5 (3.4 s and 419 MB against 2.9 s and 285 MB with 100; all
// of a map's elements in one statement, 2.7 s and 284 MB), and a
// hundred keep the line a refusal names short enough to read.
const elementsPerStatement = 100

// element adds elem to the element statement head (verb, family, table and
// object), starting a new statement at another head or a full one.
func (s *script) element(head, elem string) {
	if head != s.elemHead || s.elems == elementsPerStatement {
		s.endElements()
		s.buf = append(s.buf, head...)
		s.buf = append(s.buf, " { "...)
		s.elemHead = head
	} else {
		s.buf = append(s.buf, ", "...)
	}
	s.buf = append(s.buf, elem...)
	s.elems++
}

// endElements ends the element statement being collected, if any.
func (s *script) endElements() {
	if s.elemHead == "" {
		return
	}
	s.buf = append(s.buf, " }\n"...)
	s.lines++
	s.elemHead, s.elems = "", 0
}

func (s *script) line(parts ...string) {
	s.endElements()
	for i, p := range parts {
		if i > 0 {
			s.buf = append(s.buf, ' ')
		}
		s.buf = append(s.buf, p...)
	}
	s.buf = append(s.buf, '\n')
	s.lines++
}

// write writes tx as one nft -f script, in an order in which every
// reference resolves when the kernel checks it:
//
//  1. add table, when the transaction creates anything (add is
//     idempotent; the comment is the one package render writes);
//  2. the new objects declared, empty;
//  3. every chain rewritten or deleted flushed (their old rules drop their
//     references);
//  4. the elements removed from a changed set or map deleted;
//  5. objects deleted: sets and maps, then chains, once nothing refers to
//     them; an object whose declaration changes is deleted here too;
//  6. those declared again;
//  7. rules: every rule of a new or rewritten chain (a changed chain is
//     flushed and filled again whole, as kube-proxy does: a service chain
//     is one rule);
//  8. elements: every element of a new object, the added ones of a
//     changed one.
//
// Elements go elementsPerStatement to a statement.
//
// The payload is nil when tx has nothing to do.
func write(tx *backend.Transaction) {
	tx.Payload, tx.Lines = writeScript(tx, wholeScript)
	if tx.Lines == 0 {
		tx.Payload = nil
	}
}

// scriptPart is which part of write's script writeScript writes.
type scriptPart int

const (
	wholeScript scriptPart = iota
	// steps 1 to 7: a cold start's first transaction, whose elements
	// go over netlink (see coldStart)
	withoutElements
	// step 8: those elements, by nft when the netlink batch failed
	elementsOnly
)

// writeScript is part of write's script.
func writeScript(tx *backend.Transaction, part scriptPart) ([]byte, int) {
	s := &script{}
	elements, others := part != withoutElements, part != elementsOnly
	fam := backend.NFTFamily(tx.Family)
	deleted := map[string]bool{}
	redeclare := map[*backend.ChainChange]bool{}
	creates := false
	for _, c := range tx.Changes {
		if c.Action == backend.Delete {
			deleted[c.Chain] = true
		}
	}
	for _, c := range tx.Changes {
		switch {
		case c.SpecChanged():
			redeclare[c], creates = true, true
		case c.Action == backend.Create:
			redeclare[c], creates = deleted[c.Chain], true
		}
	}
	declare := func(c *backend.ChainChange) {
		if c.SpecAfter == "" {
			s.line("add", c.Kind.String(), fam, c.Table, c.Chain)
		} else {
			s.line("add", c.Kind.String(), fam, c.Table, c.Chain, "{", c.SpecAfter, "}")
		}
	}
	if others && creates && len(tx.Changes) > 0 {
		t := tx.Changes[0].Table
		s.line("add table", fam, t, `{ comment "rules for `+t+`" ; }`)
	}
	for _, c := range tx.Changes { // 2
		if others && c.Action == backend.Create && !redeclare[c] {
			declare(c)
		}
	}
	for _, c := range tx.Changes { // 3
		if others && c.Kind == backend.KindChain && c.Action != backend.Create {
			s.line("flush chain", fam, c.Table, c.Chain)
		}
	}
	// An element that goes to an object made again is deleted and added
	// again with it: it holds a reference the object's deletion needs
	// gone.
	remade := map[string]bool{}
	for c := range redeclare {
		remade[c.Chain] = true
	}
	again := func(op backend.DiffOp, r backend.Rule) bool {
		if op != backend.DiffEqual || len(remade) == 0 {
			return false
		}
		for _, name := range backend.NFTReferences(r) {
			if remade[name] {
				return true
			}
		}
		return false
	}
	for _, c := range tx.Changes { // 4
		if others && c.Kind != backend.KindChain && c.Action == backend.Update && !c.SpecChanged() {
			for op, r := range c.Lines() {
				if op == backend.DiffDelete || again(op, r) {
					key, _ := backend.SplitNFTElement(r.Text())
					s.element("delete element "+fam+" "+c.Table+" "+c.Chain, key)
				}
			}
		}
	}
	for _, chains := range []bool{false, true} { // 5
		for _, c := range tx.Changes {
			if others && (c.Kind == backend.KindChain) == chains && (c.Action == backend.Delete || c.SpecChanged()) {
				s.line("delete", c.Kind.String(), fam, c.Table, c.Chain)
			}
		}
	}
	for _, c := range tx.Changes { // 6
		if others && redeclare[c] {
			declare(c)
		}
	}
	table := func(c *backend.ChainChange) string { return fam + " " + c.Table + " " }
	for _, c := range tx.Changes { // 7
		if others && c.Kind == backend.KindChain && c.Action != backend.Delete {
			for _, r := range c.After {
				s.line("add rule", table(c)+c.Chain, r.Text())
			}
		}
	}
	for _, c := range tx.Changes { // 8
		switch {
		case !elements:
		case c.Kind == backend.KindChain || c.Action == backend.Delete:
		case c.Action == backend.Create || c.SpecChanged():
			for _, r := range c.After {
				s.element("add element "+table(c)+c.Chain, r.Text())
			}
		default:
			for op, r := range c.Lines() {
				if op == backend.DiffInsert || again(op, r) {
					s.element("add element "+table(c)+c.Chain, r.Text())
				}
			}
		}
	}
	s.endElements()
	return s.buf, s.lines
}
