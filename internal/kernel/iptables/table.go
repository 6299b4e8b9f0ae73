package iptables

import (
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// emptyTable reports whether t holds nothing anyone wrote: only built-in
// chains, without rules, with the ACCEPT policy.
func emptyTable(t *backend.Table) bool {
	for _, c := range t.Chains {
		if !c.Builtin() || len(c.Rules) > 0 || (c.Policy != "ACCEPT" && c.Policy != "") {
			return false
		}
	}
	return true
}

// removable reads fam's table through k and says whether RemoveTable may
// remove it: false with nil when it is gone already.
func removable(k Interface, fam backend.Family, table string) (bool, error) {
	rs, err := k.Save(fam)
	if err != nil {
		return false, err
	}
	t := rs.Table(table)
	switch {
	case t == nil:
		return false, nil
	case !emptyTable(t):
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, backend.ErrTableInUse)
	}
	return true, nil
}

// RemoveTable implements backend.Kernel. On nft it runs iptables-nft-restore
// without --noflush on a payload that names only the table ("*nat",
// "COMMIT"): iptables-nft flushes a table by deleting it, and the payload
// declares nothing that would create it again. The table is read just
// before: nft takes no lock, so a rule another program adds in the few
// milliseconds between the two would go with it, the one window svcnat
// cannot close with iptables' own means.
func (r *runner) RemoveTable(fam backend.Family, table string) (bool, error) {
	if r.backend != NFT {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, backend.ErrKernelTable)
	}
	if _, known := rules.BuiltinChains(table); !known {
		return false, fmt.Errorf("removing the %s %s table: unknown table", fam, table)
	}
	ok, err := removable(r, fam, table)
	if !ok || err != nil {
		return false, err
	}
	bins, err := r.family(fam)
	if err != nil {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	payload := []byte("*" + table + "\nCOMMIT\n")
	in, err := payloadFile(payload)
	if err != nil {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	defer in.Close()
	if err := r.restoreFrom(fam, bins.restore, nil, in, payload); err != nil {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	return true, nil
}

// RemoveTable implements backend.Kernel as the runner does: an empty table
// goes on nft; legacy keeps it.
func (f *Fake) RemoveTable(fam backend.Family, table string) (bool, error) {
	if f.Name() != NFT {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, backend.ErrKernelTable)
	}
	ok, err := removable(f, fam, table)
	if !ok || err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.state[fam]
	for i, t := range live.Tables {
		if t.Name == table {
			live.Tables = append(live.Tables[:i], live.Tables[i+1:]...)
			break
		}
	}
	return true, nil
}
