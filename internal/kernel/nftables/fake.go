package nftables

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Fake is a backend.Kernel that keeps each family's tables in memory and
// runs the scripts write produces as nft -f does, all or nothing, so that
// the planner, the applier and rollback are tested without root. It is in
// the package (not a _test file) for other packages' tests;
// TestFakeAgreesWithKernel runs the same transactions through it and a
// real kernel.
//
// What it models: add, flush and delete of tables, chains, sets and maps;
// add rule; add and delete element. Rules and elements are kept as
// written: the scripts write produces carry them as nft lists them. It
// refuses, with a *backend.TxError naming the line, what the kernel
// refuses (each checked against nft 1.0.6 on kernel 6.x): a rule in a
// missing chain; a jump or goto to a missing chain, or an @set that does
// not exist; an element in a missing set or map, or one whose verdict
// goes to a missing chain; deleting a missing element or object; deleting
// a chain that another chain's rule or a map element goes to; deleting a
// set or map a rule names. Deleting a chain that holds rules is not
// refused: kernel 6.x deletes the rules with it (nft 1.0.6 checked), so
// svcnat's scripts flush first only to drop references. The checks are made as each line
// comes, as the kernel makes them in a transaction's order.
//
// Differences, all on the permissive side: it does not check rule or
// element syntax, types, or loops between chains.
type Fake struct {
	mu       sync.Mutex
	table    string
	state    map[backend.Family]*backend.Ruleset
	failWhen func(line string) bool
	runs     int
}

var (
	_ backend.Kernel        = (*Fake)(nil)
	_ backend.ElementReader = (*Fake)(nil)
)

// ErrInjected is the error of a refusal FailWhen asked for.
var ErrInjected = errors.New("injected failure")

// NewFake returns an empty Fake (a fresh namespace: no tables) that owns
// the table of prefix (backend.NFTTable; "svcnat" for "").
func NewFake(prefix string) *Fake {
	if prefix == "" {
		prefix = "svcnat"
	}
	return &Fake{table: backend.NFTTable(prefix), state: map[backend.Family]*backend.Ruleset{
		backend.IPv4: {Family: backend.IPv4, Syntax: backend.NFTables},
		backend.IPv6: {Family: backend.IPv6, Syntax: backend.NFTables},
	}}
}

// FailWhen makes every later Run fail at the first line for which pred
// returns true, until FailWhen(nil). The error wraps ErrInjected.
func (f *Fake) FailWhen(pred func(line string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWhen = pred
}

// Runs counts the transactions run so far (those with nothing to do
// included).
func (f *Fake) Runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs
}

// Name implements backend.Kernel.
func (f *Fake) Name() backend.Name { return Name }

// ReadOnly implements backend.Kernel: a Fake changes its rules.
func (f *Fake) ReadOnly() bool { return false }

// Version implements backend.Kernel: the nft the Fake stands for.
func (f *Fake) Version() string { return "1.0.6" }

// Limits implements backend.Kernel: the runner's.
func (f *Fake) Limits() backend.Limits { return limits }

// Read implements backend.Kernel: the owned table of fam, as the runner
// reads it.
func (f *Fake) Read(fam backend.Family, like *backend.Ruleset) (*backend.Ruleset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := &backend.Ruleset{Family: fam, Syntax: backend.NFTables}
	if t := f.state[fam].Table(f.table); t != nil {
		rs.Tables = []*backend.Table{t.Clone()}
	}
	return rs, nil
}

// ReadChain implements backend.Kernel.
func (f *Fake) ReadChain(fam backend.Family, table, name string) ([]backend.Rule, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.state[fam].Table(table)
	if t == nil || t.Chain(name) == nil {
		return nil, false, nil
	}
	return slices.Clone(t.Chain(name).Rules), true, nil
}

// ReadElements implements backend.ElementReader as the runner does, by
// the keys' text: the Fake keeps elements as written, and gives them in
// ReadChain's order.
func (f *Fake) ReadElements(fam backend.Family, table, set string, elems []backend.Rule) ([]backend.Rule, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.state[fam].Table(table)
	if t == nil || t.Chain(set) == nil || t.Chain(set).Kind == backend.KindChain {
		return nil, false, nil
	}
	asked := map[string]bool{}
	for _, e := range elems {
		key, _ := backend.SplitNFTElement(e.Text())
		asked[key] = true
	}
	var present []backend.Rule
	for _, r := range t.Chain(set).Rules {
		if key, _ := backend.SplitNFTElement(r.Text()); asked[key] {
			present = append(present, r)
		}
	}
	return present, true, nil
}

// Transactions implements backend.Kernel as the runner does.
func (f *Fake) Transactions(fam backend.Family, changes []backend.ChainChange, batch int) ([]*backend.Transaction, *backend.Transaction) {
	return transactions(fam, changes, batch)
}

// Write implements backend.Kernel as the runner does.
func (f *Fake) Write(tx *backend.Transaction) { write(tx) }

// Run implements backend.Kernel: it runs tx's script on a copy of the
// family's tables and keeps the copy only when every line went through.
func (f *Fake) Run(tx *backend.Transaction) error {
	if tx.Payload == nil {
		f.Write(tx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs++
	if tx.Lines == 0 {
		return nil
	}
	return f.runScript(tx.Family, tx.Payload)
}

// RemoveTable implements backend.Kernel as the runner does.
func (f *Fake) RemoveTable(fam backend.Family, table string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.state[fam].Table(table)
	switch {
	case table != f.table:
		return false, fmt.Errorf("removing the %s %s table: it is not svcnat's (%s): %w", fam, table, f.table, backend.ErrTableInUse)
	case t == nil:
		return false, nil
	case len(t.Chains) > 0:
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, backend.ErrTableInUse)
	}
	if err := f.runScript(fam, []byte("delete table "+backend.NFTFamily(fam)+" "+table+"\n")); err != nil {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	return true, nil
}

// runScript runs payload on family fam, all or nothing; f.mu is held.
func (f *Fake) runScript(fam backend.Family, payload []byte) error {
	rs := f.state[fam].Clone()
	lines := strings.Split(strings.TrimSuffix(string(payload), "\n"), "\n")
	for i, line := range lines {
		refuse := func(reason string, err error) error {
			return &backend.TxError{Family: fam, Tool: "nft", Line: i + 1, LineText: line, Reason: reason,
				Stderr: fmt.Sprintf("/dev/stdin:%d:1-%d: Error: %s\n%s\n", i+1, len(line), reason, line), Err: err}
		}
		if f.failWhen != nil && f.failWhen(line) {
			return refuse("injected failure", ErrInjected)
		}
		if reason := applyLine(rs, fam, line); reason != "" {
			return refuse(reason, errors.New(reason))
		}
	}
	f.state[fam] = rs
	return nil
}

// nft's reasons, as it prints them.
const (
	enoent = "Could not process rule: No such file or directory"
	ebusy  = "Could not process rule: Device or resource busy"
	eexist = "Could not process rule: File exists"
)

// applyLine runs one script line on rs and returns why the kernel would
// refuse it, "" when it goes through.
func applyLine(rs *backend.Ruleset, fam backend.Family, line string) string {
	f := strings.SplitN(line, " ", 6)
	if len(f) < 4 || f[2] != backend.NFTFamily(fam) {
		return "syntax error, unexpected " + strings.Join(f[:min(len(f), 3)], " ")
	}
	verb, what, table := f[0], f[1], f[3]
	tab := rs.Table(table)
	if what == "table" {
		switch verb {
		case "add":
			rs.EnsureTable(table)
		case "delete":
			if tab == nil {
				return enoent
			}
			if len(tab.Chains) > 0 {
				// nft deletes a table with everything in it; svcnat only
				// ever deletes an empty one (RemoveTable).
				return ebusy
			}
			rs.Tables = slices.DeleteFunc(rs.Tables, func(t *backend.Table) bool { return t == tab })
		case "flush":
			if tab == nil {
				return enoent
			}
			for _, c := range tab.Chains {
				c.Rules = nil
			}
		default:
			return "syntax error, unexpected " + verb
		}
		return ""
	}
	if tab == nil || len(f) < 5 {
		return enoent
	}
	name, rest := f[4], ""
	if len(f) == 6 {
		rest = f[5]
	}
	obj := tab.Chain(name)
	k, isKind := kinds[what]
	switch {
	case isKind && verb == "add":
		decl, _ := braced(rest)
		if obj != nil {
			if obj.Kind != k {
				return eexist
			}
			return ""
		}
		tab.Chains = append(tab.Chains, &backend.Chain{Name: name, Kind: k, Policy: decl})
	case isKind && obj == nil, isKind && obj.Kind != k:
		return enoent
	case isKind && verb == "flush":
		obj.Rules = nil
	case isKind && verb == "delete":
		// The kernel (6.x) deletes a chain's own rules with it: only a
		// reference from elsewhere keeps it.
		obj.Rules = nil
		if referenced(tab, name) {
			return ebusy
		}
		tab.Chains = slices.DeleteFunc(tab.Chains, func(c *backend.Chain) bool { return c == obj })
	case what == "rule" && verb == "add":
		if obj == nil || obj.Kind != backend.KindChain {
			return enoent
		}
		r := backend.NFTRuleOf(name, rest)
		if !resolves(tab, r) {
			return enoent
		}
		obj.Rules = append(obj.Rules, r)
	case what == "element":
		if obj == nil || obj.Kind == backend.KindChain {
			return enoent
		}
		body, ok := braced(rest)
		if !ok {
			return "syntax error, unexpected end of file"
		}
		elems, err := splitElements(body)
		if err != nil {
			return "syntax error, " + err.Error()
		}
		for _, e := range elems {
			if reason := element(tab, obj, verb, e); reason != "" {
				return reason
			}
		}
		backend.SortElements(obj.Rules)
	default:
		return "syntax error, unexpected " + verb + " " + what
	}
	return ""
}

// element adds or deletes one element of obj.
func element(tab *backend.Table, obj *backend.Chain, verb, text string) string {
	key, _ := backend.SplitNFTElement(text)
	i := slices.IndexFunc(obj.Rules, func(r backend.Rule) bool {
		k, _ := backend.SplitNFTElement(r.Text())
		return k == key
	})
	switch verb {
	case "add":
		r := backend.NFTElementOf(obj.Name, text)
		switch {
		case !resolves(tab, r):
			return enoent
		case i >= 0 && obj.Rules[i].Text() != text:
			return eexist
		case i < 0:
			obj.Rules = append(obj.Rules, r)
		}
	case "delete":
		if i < 0 {
			return enoent
		}
		obj.Rules = slices.Delete(obj.Rules, i, i+1)
	default:
		return "syntax error, unexpected " + verb
	}
	return ""
}

// resolves reports whether every object r names exists in tab, as the
// kind it is named as.
func resolves(tab *backend.Table, r backend.Rule) bool {
	for _, name := range backend.NFTReferences(r) {
		c := tab.Chain(name)
		if c == nil {
			return false
		}
	}
	return true
}

// referenced reports whether any rule or element of tab names name.
func referenced(tab *backend.Table, name string) bool {
	for _, c := range tab.Chains {
		for _, r := range c.Rules {
			if slices.Contains(backend.NFTReferences(r), name) {
				return true
			}
		}
	}
	return false
}

// braced is s's content between "{ " and " }"; "" and true for "".
func braced(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	if !strings.HasPrefix(s, "{ ") || !strings.HasSuffix(s, " }") || len(s) < 4 {
		return "", false
	}
	return s[2 : len(s)-2], true
}
