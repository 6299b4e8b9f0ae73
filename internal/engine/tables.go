package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// createdTablesFile, in the state directory, lists per backend the tables
// svcnat's applies created ("ipv4 nat"): the ones that were not there
// when an apply first wrote to them. destroy removes those that hold
// nothing else, so that a host gets back the tables it had. It outlives
// the generations (which keep ten), and destroy empties it.
const createdTablesFile = "created-tables.json"

// createdTables is the content of createdTablesFile: backend → tables.
type createdTables map[backend.Name][]string

func readCreatedTables(d *state.Dir) (createdTables, error) {
	data, err := d.ReadFile(createdTablesFile)
	if errors.Is(err, fs.ErrNotExist) {
		return createdTables{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the tables svcnat created: %w", err)
	}
	ct := createdTables{}
	if err := json.Unmarshal(data, &ct); err != nil {
		return nil, fmt.Errorf("reading the tables svcnat created (%s): %w", createdTablesFile, err)
	}
	return ct, nil
}

func (ct createdTables) save(d *state.Dir) error {
	data, err := json.MarshalIndent(ct, "", "  ")
	if err != nil {
		return err
	}
	if err := d.WriteFile(createdTablesFile, append(data, '\n')); err != nil {
		return fmt.Errorf("recording the tables svcnat creates: %w", err)
	}
	return nil
}

// tableKey names a table in createdTablesFile.
func tableKey(f backend.Family, table string) string { return f.Key() + " " + table }

// noteCreatedTables records, before a commit writes desired over live
// (the whole live dump), the tables the commit will create: those desired
// has rules in and live lacks. It is written before the transactions, so
// that a commit killed half way still leaves the record.
func (e *Engine) noteCreatedTables(d *state.Dir, desired, live map[backend.Family]*backend.Ruleset) error {
	name := e.Kernel.Name()
	var fresh []string
	for _, f := range backend.Families {
		if desired[f] == nil {
			continue
		}
		for _, t := range desired[f].Tables {
			if len(t.Chains) > 0 && (live[f] == nil || live[f].Table(t.Name) == nil) {
				fresh = append(fresh, tableKey(f, t.Name))
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	ct, err := readCreatedTables(d)
	if err != nil {
		return err
	}
	n := len(ct[name])
	for _, k := range fresh {
		if !slices.Contains(ct[name], k) {
			ct[name] = append(ct[name], k)
		}
	}
	if len(ct[name]) == n {
		return nil
	}
	slices.Sort(ct[name])
	return ct.save(d)
}

// noteCanaryTables records, in d whose lock the caller holds, the tables
// that creating prefix's missing canary chains will create: reconcile
// keeps one in nat and filter of both families, also where the
// configuration writes nothing (IPv6 of an IPv4-only one). It reads the
// families with a missing canary whole, which happens only on a first
// pass or after a flush.
func (e *Engine) noteCanaryTables(d *state.Dir, prefix string, missing []Canary) error {
	want, live := map[backend.Family]*backend.Ruleset{}, map[backend.Family]*backend.Ruleset{}
	for _, m := range missing {
		if live[m.Family] == nil {
			var err error
			if live[m.Family], err = e.Kernel.Read(m.Family, nil); err != nil {
				return err
			}
			want[m.Family] = &backend.Ruleset{Family: m.Family}
		}
		for _, at := range e.canaryPlaces(prefix) {
			if at.Table == m.Table {
				want[m.Family].EnsureTable(m.Table).EnsureChain(at.Chain)
			}
		}
	}
	return e.noteCreatedTables(d, want, live)
}

// removeCreatedTables, the last step of destroy, removes the tables of
// this backend that svcnat's applies created, when nothing but empty
// built-in chains is left in them, and forgets them all: a table someone
// else now writes to is theirs. Legacy tables cannot be removed (the
// kernel made them); they stay, empty. It returns the tables removed.
func (e *Engine) removeCreatedTables(d *state.Dir) ([]string, error) {
	name := e.Kernel.Name()
	ct, err := readCreatedTables(d)
	if err != nil || len(ct[name]) == 0 {
		return nil, err
	}
	if e.Kernel.ReadOnly() {
		return nil, nil
	}
	var removed []string
	for _, k := range ct[name] {
		key, table, _ := strings.Cut(k, " ")
		f, ok := backend.ParseFamily(key)
		if !ok {
			continue
		}
		done, err := e.Kernel.RemoveTable(f, table)
		switch {
		case done:
			removed = append(removed, fmt.Sprintf("%s %s", f, table))
		case err == nil, errors.Is(err, backend.ErrTableInUse), errors.Is(err, backend.ErrKernelTable):
		default:
			return removed, fmt.Errorf("svcnat's chains are gone, but giving back the tables its applies created failed: %w", err)
		}
	}
	delete(ct, name)
	return removed, ct.save(d)
}

// giveBackNewTables removes, after a commit that failed and was rolled
// back, the tables it created (desired has them, live, read before it,
// had not) where they are empty again: on nftables svcnat's own table,
// whose presence alone would make the next auto choose nftables. Best
// effort: a table that is not empty, or cannot be removed, stays, as
// destroy leaves it.
func (e *Engine) giveBackNewTables(desired, live map[backend.Family]*backend.Ruleset) {
	for _, f := range backend.Families {
		if desired[f] == nil {
			continue
		}
		for _, t := range desired[f].Tables {
			if live[f] == nil || live[f].Table(t.Name) == nil {
				_, _ = e.Kernel.RemoveTable(f, t.Name)
			}
		}
	}
}
