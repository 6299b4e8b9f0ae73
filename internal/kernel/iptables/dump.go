package iptables

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Dump is an Interface over saved iptables-save output (--iptables-save):
// it can be planned against, without root and without iptables, but not
// changed (ReadOnly). Its Name is File; its version is that of current
// distributions' iptables (1.8.9), as a dump says nothing of the binaries
// of the host it came from.
type Dump struct {
	sets map[backend.Family]*backend.Ruleset
}

var _ Interface = (*Dump)(nil)

// OpenDump reads path as the IPv4 rules and, when it exists, path.v6 as
// the IPv6 rules. A family without a file saves as empty.
func OpenDump(path string) (*Dump, error) {
	d := &Dump{sets: map[backend.Family]*backend.Ruleset{}}
	for f, p := range map[backend.Family]string{backend.IPv4: path, backend.IPv6: path + ".v6"} {
		data, err := os.ReadFile(p)
		if err != nil {
			if f == backend.IPv6 && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("reading the saved dump: %w", err)
		}
		rs, err := rules.ParseSave(f, strings.NewReader(string(data)))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		d.sets[f] = rs
	}
	return d, nil
}

// dumpVersion is what a Dump reports (see Dump).
var dumpVersion = Version{Major: 1, Minor: 8, Patch: 9, Mode: string(File)}

// Save implements Interface.
func (d *Dump) Save(f backend.Family) (*backend.Ruleset, error) { return d.Read(f, nil) }

// Read implements backend.Kernel: a copy of the saved rules.
func (d *Dump) Read(f backend.Family, _ *backend.Ruleset) (*backend.Ruleset, error) {
	rs, ok := d.sets[f]
	if !ok {
		return &backend.Ruleset{Family: f}, nil
	}
	return rs.Clone(), nil
}

// ReadChain implements backend.Kernel.
func (d *Dump) ReadChain(f backend.Family, table, chain string) ([]backend.Rule, bool, error) {
	return listFromSave(d, f, table, chain)
}

// Restore implements Interface: it always fails with backend.ErrReadOnly.
func (d *Dump) Restore(f backend.Family, _ []byte, _ RestoreFlags) error { return readOnly(f) }

// Write implements backend.Kernel: a dump's transactions are written as
// the real runner's are, for plans to count their lines.
// Transactions is transactions: iptables orders and stages them alike
// on every kernel.
func (d *Dump) Transactions(fam backend.Family, changes []backend.ChainChange, batch int) ([]*backend.Transaction, *backend.Transaction) {
	return transactions(fam, changes, batch)
}

func (d *Dump) Write(tx *backend.Transaction) { write(tx) }

// Run implements backend.Kernel: it always fails with backend.ErrReadOnly.
func (d *Dump) Run(tx *backend.Transaction) error { return readOnly(tx.Family) }

// RemoveTable implements backend.Kernel: it always fails with
// backend.ErrReadOnly.
func (d *Dump) RemoveTable(f backend.Family, _ string) (bool, error) { return false, readOnly(f) }

// Name implements backend.Kernel.
func (d *Dump) Name() backend.Name { return File }

// ReadOnly implements backend.Kernel: a dump is never changed.
func (d *Dump) ReadOnly() bool { return true }

// Version implements backend.Kernel.
func (d *Dump) Version() string { return dumpVersion.String() }

// Limits implements backend.Kernel: those of the nft backend.
func (d *Dump) Limits() backend.Limits { return limits(NFT, dumpVersion) }
