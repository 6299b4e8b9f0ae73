package iptables

import (
	"fmt"
	"strings"
	"sync"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Fake is an Interface that keeps the rules in memory and applies restore
// payloads as iptables-restore --noflush does, so that the planner, the
// applier and rollback are tested without root. It is in the package (not
// a _test file) for other packages' tests. TestFakeAgreesWithKernel runs
// the same payloads through it and through both real backends.
//
// What it models: tables with their built-in chains; ":CHAIN - [0:0]"
// creates or flushes a user chain (":BUILTIN POLICY" sets the policy and
// flushes nothing); -A, -I CHAIN [N], -D CHAIN RULE|N, -N, -X [CHAIN],
// -F [CHAIN], -P, -Z; rules stored in the canonical form the kernel echoes
// (rules.CanonicalRule), so -D finds a rule written differently and Save
// compares with a real dump. It refuses, with a *backend.TxError naming the
// line, what the kernel refuses: a jump to a missing or built-in chain, -X
// of a missing, referenced or non-empty chain, -D of a missing rule, -A to
// a missing chain, -N of an existing one, an -I position past the end, a
// chain name over 28 characters, DROP in nat and NAT targets outside it,
// arguments rules.Canonicalize cannot read, a missing COMMIT.
//
// Like the kernel, each table is one transaction committed at its COMMIT
// line: a failing line discards its own table and everything after it,
// while tables committed earlier in the payload stay.
//
// Differences, all on the permissive side: it does not check which hooks
// a target may be reached from (DNAT from POSTROUTING), loops between
// chains, match or target options beyond what Canonicalize reads; and it
// blames the offending line where legacy blames some kernel-side refusals
// on the table's COMMIT line. Counters are not modelled.
type Fake struct {
	mu       sync.Mutex
	backend  Backend
	version  Version
	state    map[backend.Family]*backend.Ruleset
	failLine int
	failWhen func(line string) bool
	restores []FakeRestore
	saves    int
	lists    int
}

// FakeRestore records one Restore call made on a Fake.
type FakeRestore struct {
	Family  backend.Family
	Payload []byte
	Flags   RestoreFlags
	Err     error
}

var _ Interface = (*Fake)(nil)

// NewFake returns an empty Fake (a fresh namespace: no tables) that reports
// the nft backend and iptables 1.8.9.
func NewFake() *Fake {
	return &Fake{
		backend: NFT,
		version: Version{Major: 1, Minor: 8, Patch: 9, Mode: versionMode(NFT)},
		state: map[backend.Family]*backend.Ruleset{
			backend.IPv4: {Family: backend.IPv4},
			backend.IPv6: {Family: backend.IPv6},
		},
	}
}

// SetBackend sets what Name reports (and the mode of Version).
func (f *Fake) SetBackend(b Backend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = b
	f.version.Mode = versionMode(b)
}

// FailOnLine makes the next Restore fail at payload line n (1-based), as
// if the kernel had refused it; later calls are not affected, so a
// rollback after the injected failure goes through. The error wraps
// ErrInjected.
func (f *Fake) FailOnLine(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failLine = n
}

// FailWhen makes every later Restore fail at the first line (trimmed) for
// which pred returns true, until FailWhen(nil). The error wraps ErrInjected.
func (f *Fake) FailWhen(pred func(line string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWhen = pred
}

// Restores returns the Restore calls made so far, oldest first.
func (f *Fake) Restores() []FakeRestore {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeRestore(nil), f.restores...)
}

// Name implements backend.Kernel.
func (f *Fake) Name() backend.Name {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backend
}

// ReadOnly implements backend.Kernel: a Fake changes its rules.
func (f *Fake) ReadOnly() bool { return false }

// Version implements backend.Kernel.
func (f *Fake) Version() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version.String()
}

// Limits implements backend.Kernel: those of the backend it reports.
func (f *Fake) Limits() backend.Limits {
	f.mu.Lock()
	defer f.mu.Unlock()
	return limits(f.backend, f.version)
}

// Read implements backend.Kernel: Save (a Fake shares nothing with like).
func (f *Fake) Read(fam backend.Family, _ *backend.Ruleset) (*backend.Ruleset, error) {
	return f.Save(fam)
}

// Write implements backend.Kernel, as the real runner writes.
// Transactions is transactions: iptables orders and stages them alike
// on every kernel.
func (f *Fake) Transactions(fam backend.Family, changes []backend.ChainChange, batch int) ([]*backend.Transaction, *backend.Transaction) {
	return transactions(fam, changes, batch)
}

func (f *Fake) Write(tx *backend.Transaction) { write(tx) }

// Run implements backend.Kernel: Restore of the written transaction.
func (f *Fake) Run(tx *backend.Transaction) error { return runTx(f, tx) }

// Save implements Interface: a copy of the family's tables, chains in the
// order both backends' iptables-save print them (built-in chains first,
// user chains by name), and the dump as backend.Ruleset.WriteSave writes it.
func (f *Fake) Save(fam backend.Family) (*backend.Ruleset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves++
	live, ok := f.state[fam]
	if !ok {
		return nil, fmt.Errorf("reading %s rules: unknown IP family", fam)
	}
	rs := &backend.Ruleset{Family: fam}
	for _, t := range live.Tables {
		rs.Tables = append(rs.Tables, t.Clone())
	}
	rs.SortChains()
	return rs, nil
}

// ReadChain implements backend.Kernel.
func (f *Fake) ReadChain(fam backend.Family, table, chain string) ([]backend.Rule, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	live, ok := f.state[fam]
	if !ok {
		return nil, false, fmt.Errorf("reading %s rules: unknown IP family", fam)
	}
	t := live.Table(table)
	if t == nil || t.Chain(chain) == nil {
		return nil, false, nil
	}
	return append([]backend.Rule(nil), t.Chain(chain).Rules...), true, nil
}

// Reads returns how many Save (or Read) and ReadChain calls were made so far.
func (f *Fake) Reads() (saves, lists int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.saves, f.lists
}

// Restore implements Interface; see Fake for the semantics.
func (f *Fake) Restore(fam backend.Family, payload []byte, flags RestoreFlags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.restore(fam, payload, flags)
	f.restores = append(f.restores, FakeRestore{Family: fam, Payload: append([]byte(nil), payload...), Flags: flags, Err: err})
	return err
}

func (f *Fake) restore(fam backend.Family, payload []byte, flags RestoreFlags) error {
	if flags&NoFlushTables == 0 {
		return fmt.Errorf("restoring %s rules: %w", fam, ErrFlushRefused)
	}
	live, ok := f.state[fam]
	if !ok {
		return fmt.Errorf("restoring %s rules: unknown IP family", fam)
	}
	failLine := f.failLine
	f.failLine = 0
	tx := &restoreTx{fam: fam, live: live}
	lines := strings.Split(string(payload), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	fail := func(n int, text string, err error) error {
		return fmt.Errorf("restoring %s rules: %w", fam, &backend.TxError{
			Family: fam, Tool: restoreTool, Line: n, LineText: text, Reason: err.Error(),
			Stderr: fmt.Sprintf("fake iptables-restore: line %d failed: %v\n", n, err), Err: err,
		})
	}
	for i, raw := range lines {
		n, line := i+1, strings.TrimSpace(raw)
		if n == failLine || (f.failWhen != nil && f.failWhen(line)) {
			return fail(n, line, ErrInjected)
		}
		if err := tx.apply(line); err != nil {
			return fail(n, line, err)
		}
	}
	if tx.cur != nil {
		n := len(lines) + 1
		return fail(n, "", fmt.Errorf("COMMIT expected at line %d", n))
	}
	return nil
}
