package iptables

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Dump is an Interface over saved iptables-save output (--iptables-save):
// it can be planned against, without root and without iptables, but not
// changed. Its Backend is File; its Version is that of current
// distributions' iptables (1.8.9), as a dump says nothing of the binaries
// of the host it came from.
type Dump struct {
	sets map[rules.Family]*rules.Ruleset
}

var _ Interface = (*Dump)(nil)

// OpenDump reads path as the IPv4 rules and, when it exists, path.v6 as
// the IPv6 rules. A family without a file saves as empty.
func OpenDump(path string) (*Dump, error) {
	d := &Dump{sets: map[rules.Family]*rules.Ruleset{}}
	for f, p := range map[rules.Family]string{rules.IPv4: path, rules.IPv6: path + ".v6"} {
		data, err := os.ReadFile(p)
		if err != nil {
			if f == rules.IPv6 && errors.Is(err, fs.ErrNotExist) {
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

// Save implements Interface.
func (d *Dump) Save(f rules.Family) (*rules.Ruleset, error) {
	rs, ok := d.sets[f]
	if !ok {
		return &rules.Ruleset{Family: f}, nil
	}
	return rs.Clone(), nil
}

// ListChain implements Interface.
func (d *Dump) ListChain(f rules.Family, table, chain string) ([]rules.Rule, bool, error) {
	return listFromSave(d, f, table, chain)
}

// Restore implements Interface: it always fails with ErrReadOnly.
func (d *Dump) Restore(f rules.Family, _ []byte, _ RestoreFlags) error {
	return fmt.Errorf("restoring %s rules: %w", f, ErrReadOnly)
}

// Backend implements Interface.
func (d *Dump) Backend() Backend { return File }

// Version implements Interface.
func (d *Dump) Version() Version { return Version{Major: 1, Minor: 8, Patch: 9, Mode: string(File)} }
