package rules

import (
	"sort"
	"strings"
)

// Restore builds an iptables-restore --noflush payload for one family from
// values. Per table it writes the chain declarations first, then the rule
// commands in the order given, then the chain deletions: a chain exists
// before a rule names it, and is deleted only after the rules that named it
// are gone. Tables come in the order kube-proxy writes them (filter, nat,
// then any other by name), each closed by its COMMIT. Nothing that was not
// named is written, so with --noflush nothing else changes. The zero value
// is an empty payload.
type Restore struct {
	tables map[string]*restoreTable
}

type restoreTable struct {
	decl, body, del strings.Builder
	lines           int
}

func (r *Restore) table(name string) *restoreTable {
	if r.tables == nil {
		r.tables = map[string]*restoreTable{}
	}
	t := r.tables[name]
	if t == nil {
		t = &restoreTable{}
		r.tables[name] = t
	}
	t.lines++
	return t
}

// Declare writes ":CHAIN - [0:0]", which creates the user chain or, when
// it exists, flushes it.
func (r *Restore) Declare(table, chain string) {
	r.table(table).decl.WriteString(":" + chain + " - [0:0]\n")
}

// Append writes "-A CHAIN ARGS".
func (r *Restore) Append(table string, rule Rule) { r.command(table, "-A", 0, rule) }

// Insert writes "-I CHAIN POS ARGS".
func (r *Restore) Insert(table string, pos int, rule Rule) { r.command(table, "-I", pos, rule) }

// Delete writes "-D CHAIN ARGS", which removes the first rule equal to rule.
func (r *Restore) Delete(table string, rule Rule) { r.command(table, "-D", 0, rule) }

func (r *Restore) command(table, cmd string, pos int, rule Rule) {
	t := r.table(table)
	rule.write(&t.body, cmd, pos)
	t.body.WriteByte('\n')
}

// DeleteChain writes "-X CHAIN" after every rule command of the table.
func (r *Restore) DeleteChain(table, chain string) {
	r.table(table).del.WriteString("-X " + chain + "\n")
}

// Empty reports whether nothing was written.
func (r *Restore) Empty() bool { return len(r.tables) == 0 }

// Lines counts the payload's lines: every declaration, command and
// deletion, plus each table's "*table" and COMMIT.
func (r *Restore) Lines() int {
	n := 0
	for _, t := range r.tables {
		n += t.lines + 2
	}
	return n
}

// Bytes returns the payload, or nil when it is empty.
func (r *Restore) Bytes() []byte {
	if r.Empty() {
		return nil
	}
	var b strings.Builder
	for _, name := range r.tableOrder() {
		t := r.tables[name]
		b.WriteString("*" + name + "\n")
		b.WriteString(t.decl.String())
		b.WriteString(t.body.String())
		b.WriteString(t.del.String())
		b.WriteString("COMMIT\n")
	}
	return []byte(b.String())
}

// tableOrder is filter, nat, then the other tables by name.
func (r *Restore) tableOrder() []string {
	rank := func(t string) int {
		switch t {
		case TableFilter:
			return 0
		case TableNAT:
			return 1
		}
		return 2
	}
	names := make([]string, 0, len(r.tables))
	for n := range r.tables {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	return names
}
