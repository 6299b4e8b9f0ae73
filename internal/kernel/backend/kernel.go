package backend

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
)

// Name is a backend's name, as plans, state and `svcnat version` record
// it. The values ("nftables", "iptables-nft", "iptables-legacy", "file"
// for a saved dump) are declared by the backend that has them.
type Name string

func (n Name) String() string { return string(n) }

// aliases are the names svcnat's iptables backends had before there was
// an nftables one, which state directories and saved plans of that time
// record and --backend still takes.
var aliases = map[Name]Name{"nft": "iptables-nft", "legacy": "iptables-legacy"}

// Canonical is n, or the name it is an old alias of ("nft" is
// "iptables-nft", "legacy" "iptables-legacy").
func (n Name) Canonical() Name {
	if c, ok := aliases[n]; ok {
		return c
	}
	return n
}

// Digested is the name as digests spell it: an iptables backend's old
// name ("nft", "legacy"), so that a plan's fingerprint, made before the
// names changed, still matches the same rules.
func (n Name) Digested() string {
	for old, c := range aliases {
		if c == n {
			return string(old)
		}
	}
	return string(n)
}

// UnmarshalText reads a recorded name, an old alias as its canonical
// name, so that every state file and saved plan reads as today's.
func (n *Name) UnmarshalText(text []byte) error {
	*n = Name(text).Canonical()
	return nil
}

// Kernel is a rule backend as svcnat uses it: the real one, a saved dump
// (ReadOnly) or a backend's fake in tests. Implementations are safe for
// concurrent use.
type Kernel interface {
	// Name is the backend the rules are read from and written to.
	Name() Name
	// ReadOnly reports a saved dump: it can be read and planned against,
	// but Run refuses every transaction (ErrReadOnly).
	ReadOnly() bool
	// Version is the version of the backend's tools, as `svcnat version`
	// prints it.
	Version() string
	// Limits are how this backend wants transactions sized and checked.
	Limits() Limits

	// Read reads every table of fam. like, when not nil, is a ruleset the
	// result is expected to be mostly like (what svcnat just rendered or
	// wrote): a backend may share what the two have in common, so that
	// reading back 10,000 services costs little memory beside them.
	Read(fam Family, like *Ruleset) (*Ruleset, error)
	// ReadChain reads one chain of fam's table: its rules in order, and
	// whether it exists. On a host with thousands of chains it costs a
	// fraction of a Read.
	ReadChain(fam Family, table, chain string) ([]Rule, bool, error)

	// Transactions turns a family's chain changes into the transactions
	// that apply them, not yet written: staged ones, each creating at most
	// batch chains nothing live references yet, and the final one, which
	// writes everything else and is the only one traffic sees. There are
	// no stages when batch is NoStaging (or 0) or the created chains fit
	// in one; final has no changes when there is nothing to do. It is
	// pure, and the order is the backend's to choose: what its kernel
	// loads fastest and reads back fastest.
	Transactions(fam Family, changes []ChainChange, batch int) (stages []*Transaction, final *Transaction)
	// Write writes tx in the backend's language, setting tx.Payload and
	// tx.Lines. It is pure: it reads and changes nothing, so that a
	// transaction's size is known (and reported) before it runs.
	Write(tx *Transaction)
	// Run runs tx, written first when Write was not called, as one
	// transaction per table: a refused line gives a *TxError naming it,
	// and tables committed before the refused one stay applied.
	Run(tx *Transaction) error
	// RemoveTable removes fam's table when it exists and holds nothing
	// anyone wrote (as the backend creates it when first asked to write to
	// it), and says whether it removed it (false: there was none). It
	// returns ErrTableInUse for any other table, and ErrKernelTable where
	// the backend's tables belong to the kernel. destroy uses it for the
	// tables svcnat's applies created, so that a host gets back the tables
	// it had.
	RemoveTable(fam Family, table string) (bool, error)
}

// Limits are the facts about a backend that shape the transactions svcnat
// writes and how it checks them.
type Limits struct {
	// Batch bounds the chains one staging transaction creates; NoStaging
	// creates every chain in the family's final transaction.
	Batch int
	// ListLimit is how many touched chains a verification reads one by one
	// (ReadChain); beyond it one Read per family is cheaper.
	ListLimit int
	// RandomFully: the backend can masquerade with fully random ports.
	RandomFully bool
	// Syntax is the language of the backend's rulesets.
	Syntax Syntax
	// ReadAhead: Read makes no use of like, so a plan may read the live
	// rules while it renders the desired ones.
	ReadAhead bool
}

// NoStaging, as Limits.Batch, creates every chain in the final transaction.
const NoStaging = -1

// Errors callers branch on, checked with errors.Is.
var (
	// ErrReadOnly: a transaction run on a saved dump, which can be
	// planned against but not changed.
	ErrReadOnly = errors.New("cannot change a saved dump")
	// ErrTableInUse: RemoveTable of a table that holds a rule, a user
	// chain or a built-in chain whose policy is not the default; it is
	// someone's, and stays.
	ErrTableInUse = errors.New("the table is in use")
	// ErrKernelTable: RemoveTable on a backend whose tables are registered
	// by the kernel's modules (legacy iptables) and cannot be removed from
	// user space.
	ErrKernelTable = errors.New("legacy (x_tables) tables cannot be removed from user space")
)

// TxError is a transaction the backend refused (or could not run). Line is
// the 1-based payload line the backend blamed (0 when it named none),
// LineText that line's text. Tables committed before the failing one stay
// applied.
type TxError struct {
	Family Family
	// Tool is the program that refused it, as the message names it
	// ("iptables-restore").
	Tool     string
	Line     int
	LineText string
	// Reason is the tool's own explanation, without its program prefix,
	// e.g. "Chain 'SVCNAT-SVC-X' does not exist"; it may be empty.
	Reason string
	// Stderr is the tool's whole stderr.
	Stderr string
	// Err is the underlying error (the exit status, a lock held, or for a
	// fake the refusal itself).
	Err error
}

func (e *TxError) Error() string {
	var b strings.Builder
	b.WriteString(e.Tool + " rejected the payload")
	if e.Line > 0 {
		fmt.Fprintf(&b, " at line %d", e.Line)
		if e.LineText != "" {
			fmt.Fprintf(&b, " %q", e.LineText)
		}
	}
	switch {
	case e.Reason != "":
		b.WriteString(": " + e.Reason)
	case e.Err != nil: // legacy iptables often gives no reason
		b.WriteString(" (" + e.Err.Error() + ")")
	}
	return b.String()
}

func (e *TxError) Unwrap() error { return e.Err }

// Transaction is one all-or-nothing write to one family's rules, built
// before it runs: the chains it writes, in order, and once written
// (Kernel.Write) the payload in the backend's language.
type Transaction struct {
	Family  Family
	Changes []*ChainChange
	// Payload and Lines are set by Kernel.Write: the transaction in the
	// backend's language and how many lines it has (svcnat reports the
	// lines it writes).
	Payload []byte
	Lines   int
	// Whole asks the backend to commit the transaction as one where it
	// would split it (the nftables cold start's elements): a rollback's,
	// which nothing would undo if half of it failed.
	Whole bool
}

// StageTransactions splits a family's changes, in the order given, into
// staged transactions of at most batch changes stageable admits each, and
// the final one holding every other change: no stages when batch is
// NoStaging (or 0) or the stageable changes fit in one. Each backend's
// Transactions orders the changes (DependencyOrder) and says which
// creations a stage may hold.
func StageTransactions(fam Family, order []*ChainChange, batch int, stageable func(*ChainChange) bool) (stages []*Transaction, final *Transaction) {
	final = &Transaction{Family: fam}
	creates := 0
	for _, c := range order {
		if stageable(c) {
			creates++
		}
	}
	if batch <= 0 || creates <= batch {
		final.Changes = order
		return nil, final
	}
	final.Changes = make([]*ChainChange, 0, len(order)-creates)
	var cur *Transaction
	for _, c := range order {
		if !stageable(c) {
			final.Changes = append(final.Changes, c)
			continue
		}
		if cur == nil || len(cur.Changes) == batch {
			cur = &Transaction{Family: fam, Changes: make([]*ChainChange, 0, min(batch, creates))}
			stages = append(stages, cur)
		}
		cur.Changes = append(cur.Changes, c)
		creates--
	}
	return stages, final
}

// DependencyOrder orders created objects so that each comes after every
// created object it refers to (refs: the objects of its rules' jumps,
// gotos, set lookups), in post-order from the ones nothing created refers
// to, taken in the order of an FNV hash of their names: a service's
// objects come together, and services in an order unrelated to their
// names (iptables-nft-save reads chains created in name order back
// quadratically slower). Objects reachable only through a loop come last.
func DependencyOrder(created []*ChainChange, refs func(*ChainChange) []ChainRef) []*ChainChange {
	byRef := make(map[ChainRef]int, len(created))
	for i, c := range created {
		byRef[ChainRef{c.Table, c.Chain}] = i
	}
	targets := make([][]int32, len(created))
	referenced := make([]bool, len(created))
	for i, c := range created {
		for _, r := range refs(c) {
			if j, ok := byRef[r]; ok && j != i {
				targets[i] = append(targets[i], int32(j))
				referenced[j] = true
			}
		}
	}
	type root struct {
		i   int
		key uint32
	}
	var roots []root
	for i := range created {
		if !referenced[i] {
			h := fnv.New32a()
			h.Write([]byte(created[i].Chain))
			roots = append(roots, root{i, h.Sum32()})
		}
	}
	sort.SliceStable(roots, func(a, b int) bool { return roots[a].key < roots[b].key })
	out := make([]*ChainChange, 0, len(created))
	state := make([]uint8, len(created)) // 1 visiting, 2 emitted
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return // emitted, or a loop (the kernels refuse loops anyway)
		}
		state[i] = 1
		for _, j := range targets[i] {
			visit(int(j))
		}
		state[i] = 2
		out = append(out, created[i])
	}
	for _, r := range roots {
		visit(r.i)
	}
	for i := range created {
		visit(i)
	}
	return out
}

// ElementReader is a Kernel that can read given elements of a set or map
// by their keys, without reading the others: what a verification of a
// few elements of a map of tens of thousands needs.
type ElementReader interface {
	// ReadElements reads, of fam's set or map table/set, the elements
	// whose keys elems have (NFTElementOf's rules: "key", "key : value",
	// with a comment or not), as ReadChain would give them and in its
	// order: an element absent is not there, one with another value
	// comes with the kernel's. ok is false when it cannot answer that way (the set is
	// missing, or its elements are the backend's to list whole): the
	// caller then reads the set with ReadChain.
	ReadElements(fam Family, table, set string, elems []Rule) (present []Rule, ok bool, err error)
}
