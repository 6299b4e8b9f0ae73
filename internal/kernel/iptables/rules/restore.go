package rules

import (
	"bytes"
	"sort"
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
	decl, body, del bytes.Buffer
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
	return t
}

// Declare writes ":CHAIN - [0:0]", which creates the user chain or, when
// it exists, flushes it.
func (r *Restore) Declare(table, chain string) {
	t := r.table(table)
	t.decl.WriteString(":" + chain + " - [0:0]\n")
	t.lines++
}

// Append writes "-A CHAIN ARGS".
func (r *Restore) Append(table string, rule Rule) { r.command(table, "-A", 0, rule) }

// Insert writes "-I CHAIN POS ARGS".
func (r *Restore) Insert(table string, pos int, rule Rule) { r.command(table, "-I", pos, rule) }

// Delete writes "-D CHAIN ARGS", which removes the first rule equal to rule.
func (r *Restore) Delete(table string, rule Rule) { r.command(table, "-D", 0, rule) }

func (r *Restore) command(table, cmd string, pos int, rule Rule) {
	t := r.table(table)
	t.body.Write(append(rule.AppendText(t.body.AvailableBuffer(), cmd, pos), '\n'))
	t.lines++
}

// Grow makes room in table's commands for n more bytes, so that a payload
// of tens of megabytes is not copied as it grows (see Rule.Size).
func (r *Restore) Grow(table string, n int) {
	r.table(table).body.Grow(n)
}

// DeleteChain writes "-X CHAIN" after every rule command of the table.
func (r *Restore) DeleteChain(table, chain string) {
	t := r.table(table)
	t.del.WriteString("-X " + chain + "\n")
	t.lines++
}

// Empty reports whether nothing was written.
func (r *Restore) Empty() bool { return r.Lines() == 0 }

// Lines counts the payload's lines: every declaration, command and
// deletion, plus each table's "*table" and COMMIT.
func (r *Restore) Lines() int {
	n := 0
	for _, t := range r.tables {
		if t.lines > 0 {
			n += t.lines + 2
		}
	}
	return n
}

// Bytes returns the payload, or nil when it is empty.
func (r *Restore) Bytes() []byte {
	if r.Empty() {
		return nil
	}
	size := 0
	for name, t := range r.tables {
		size += len(name) + len("*\nCOMMIT\n") + t.decl.Len() + t.body.Len() + t.del.Len()
	}
	out := make([]byte, 0, size)
	for _, name := range r.tableOrder() {
		t := r.tables[name]
		if t.lines == 0 {
			continue
		}
		out = append(out, '*')
		out = append(out, name...)
		out = append(out, '\n')
		out = append(out, t.decl.Bytes()...)
		out = append(out, t.body.Bytes()...)
		out = append(out, t.del.Bytes()...)
		out = append(out, "COMMIT\n"...)
	}
	return out
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
