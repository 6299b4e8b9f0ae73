package iptables

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// A saved dump plans like a kernel (IPv6 from FILE.v6, or empty) and
// refuses every change.
func TestDumpReadsBothFamiliesAndRefusesChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(path, []byte("*nat\n:X - [0:0]\n-A X -j RETURN\nCOMMIT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDump(path)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.Save(backend.IPv4)
	if err != nil || rs.RuleCount() != 1 {
		t.Fatalf("IPv4: %v, %d rules", err, rs.RuleCount())
	}
	if rs6, err := d.Save(backend.IPv6); err != nil || len(rs6.Tables) != 0 {
		t.Fatalf("IPv6 without FILE.v6: %v, %+v", err, rs6)
	}
	if err := d.Restore(backend.IPv4, []byte("*nat\nCOMMIT\n"), NoFlushTables); !errors.Is(err, backend.ErrReadOnly) {
		t.Fatalf("Restore on a dump: %v", err)
	}
	if r, ok, err := d.ReadChain(backend.IPv4, "nat", "X"); err != nil || !ok || len(r) != 1 {
		t.Fatalf("ReadChain(nat, X) = %v, %v, %v", r, ok, err)
	}
	if _, ok, err := d.ReadChain(backend.IPv4, "nat", "Y"); err != nil || ok {
		t.Fatalf("ReadChain of a missing chain: %v, %v", ok, err)
	}
	if d.Name() != File || !d.ReadOnly() || !d.Limits().RandomFully {
		t.Fatalf("backend %s, version %s", d.Name(), d.Version())
	}
	if err := os.WriteFile(path+".v6", []byte("-A X\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDump(path); err == nil {
		t.Fatal("a malformed FILE.v6 was accepted")
	}
	if _, err := OpenDump(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing dump was accepted")
	}
}
