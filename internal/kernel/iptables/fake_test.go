package iptables

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// dump returns fam's rules as the Fake's Save prints them.
func dump(t *testing.T, ipt Interface, fam backend.Family) string {
	t.Helper()
	rs, err := ipt.Save(fam)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rs.WriteSave(&b)
	return b.String()
}

func mustRestore(t *testing.T, ipt Interface, fam backend.Family, payload string) {
	t.Helper()
	if err := ipt.Restore(fam, []byte(payload), NoFlushTables); err != nil {
		t.Fatal(err)
	}
}

// restoreErr restores payload, which must fail, and returns its *backend.TxError.
func restoreErr(t *testing.T, ipt Interface, fam backend.Family, payload string) *backend.TxError {
	t.Helper()
	err := ipt.Restore(fam, []byte(payload), NoFlushTables)
	var re *backend.TxError
	if !errors.As(err, &re) {
		t.Fatalf("want a *backend.TxError, got %v", err)
	}
	return re
}

const base = `*nat
:SVCNAT-SERVICES - [0:0]
:SVCNAT-SVC-A - [0:0]
-A PREROUTING -m comment --comment "svcnat service portals" -j SVCNAT-SERVICES
-A SVCNAT-SERVICES -d 10.32.0.1 -p tcp --dport 80 -j SVCNAT-SVC-A
-A SVCNAT-SVC-A -p tcp -j DNAT --to-destination 10.64.0.2:80
COMMIT
`

func TestFakeDeclareFlushesUserChainsOnly(t *testing.T) {
	f := NewFake()
	mustRestore(t, f, backend.IPv4, base)
	mustRestore(t, f, backend.IPv4, "*nat\n:PREROUTING DROP [0:0]\n:SVCNAT-SVC-A - [0:0]\n-A SVCNAT-SVC-A -j RETURN\nCOMMIT\n")
	rs, err := f.Save(backend.IPv4)
	raw := dump(t, f, backend.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	nat := rs.Table("nat")
	if p := nat.Chain("PREROUTING"); p.Policy != "DROP" || len(p.Rules) != 1 {
		t.Errorf("built-in declaration flushed or kept its policy: %+v", p)
	}
	if c := nat.Chain("SVCNAT-SVC-A"); len(c.Rules) != 1 || c.Rules[0].Target() != "RETURN" {
		t.Errorf("user chain not flushed by its declaration: %+v", c.Rules)
	}
	want := "-A SVCNAT-SERVICES -d 10.32.0.1/32 -p tcp -m tcp --dport 80 -j SVCNAT-SVC-A"
	if !strings.Contains(string(raw), want+"\n") {
		t.Errorf("rules are not stored in canonical form:\n%s", raw)
	}
	// The raw dump reads back as the same ruleset.
	back, err := rules.ParseSave(backend.IPv4, strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := back.WriteSave(&again); err != nil || again.String() != string(raw) {
		t.Errorf("Save dump does not round-trip (%v):\n%s\n---\n%s", err, raw, again.String())
	}
}

func TestFakeDeleteChain(t *testing.T) {
	f := NewFake()
	mustRestore(t, f, backend.IPv4, base)
	for _, tc := range []struct{ payload, reason string }{
		{"*nat\n-X SVCNAT-NOPE\nCOMMIT\n", "No chain"},
		{"*nat\n-F SVCNAT-SVC-A\n-X SVCNAT-SVC-A\nCOMMIT\n", "referenced from SVCNAT-SERVICES"},
		{"*nat\n-X SVCNAT-SVC-A\nCOMMIT\n", "not empty"},
		{"*nat\n-X PREROUTING\nCOMMIT\n", "built-in"},
	} {
		re := restoreErr(t, f, backend.IPv4, tc.payload)
		if want := strings.Count(tc.payload, "\n") - 1; re.Line != want || !strings.Contains(re.Reason, tc.reason) {
			t.Errorf("%q: line %d %q, want line %d %q", tc.payload, re.Line, re.Reason, want, tc.reason)
		}
	}
	// Unreference, flush, delete: in one table transaction.
	mustRestore(t, f, backend.IPv4, "*nat\n:SVCNAT-SERVICES - [0:0]\n:SVCNAT-SVC-A - [0:0]\n-X SVCNAT-SVC-A\nCOMMIT\n")
	if strings.Contains(dump(t, f, backend.IPv4), "SVCNAT-SVC-A") {
		t.Error("chain not deleted")
	}
}

func TestFakeInsertAndDelete(t *testing.T) {
	f := NewFake()
	mustRestore(t, f, backend.IPv4, base)
	mustRestore(t, f, backend.IPv4, `*nat
-I SVCNAT-SVC-A -j RETURN
-I SVCNAT-SVC-A 3 -p udp -j MASQUERADE
-D SVCNAT-SERVICES -p TCP -d 10.32.0.1/32 -m tcp --dport 80 -j SVCNAT-SVC-A
-D PREROUTING 1
COMMIT
`)
	rs, _ := f.Save(backend.IPv4)
	nat := rs.Table("nat")
	var got []string
	for _, r := range nat.Chain("SVCNAT-SVC-A").Rules {
		got = append(got, r.Target())
	}
	if strings.Join(got, " ") != "RETURN DNAT MASQUERADE" {
		t.Errorf("-I order: %v", got)
	}
	if n := len(nat.Chain("SVCNAT-SERVICES").Rules) + len(nat.Chain("PREROUTING").Rules); n != 0 {
		t.Errorf("-D left %d rules", n)
	}
	for payload, line := range map[string]int{
		"*nat\n-I SVCNAT-SVC-A 5 -j RETURN\nCOMMIT\n":                     2,
		"*nat\n-I SVCNAT-SVC-A 0 -j RETURN\nCOMMIT\n":                     2,
		"*nat\n-D SVCNAT-SVC-A -j ACCEPT\nCOMMIT\n":                       2,
		"*nat\n-A SVCNAT-MISSING -j ACCEPT\nCOMMIT\n":                     2,
		"*nat\n:SVCNAT-X - [0:0]\n-A SVCNAT-X -j NOPE\nCOMMIT\n":          3,
		"*nat\n-A SVCNAT-SVC-A -j PREROUTING\nCOMMIT\n":                   2,
		"*nat\n-A SVCNAT-SVC-A -j DROP\nCOMMIT\n":                         2,
		"*filter\n:SVCNAT-F - [0:0]\n-A SVCNAT-F -j MASQUERADE\nCOMMIT\n": 3,
		"*nat\n-N SVCNAT-SVC-A\nCOMMIT\n":                                 2,
		"*nat\n:SVCNAT-0123456789ABCDEFGHIJKLMN - [0:0]\nCOMMIT\n":        2,
		"*nat\n-A SVCNAT-SVC-A -t filter -j ACCEPT\nCOMMIT\n":             2,
		"*nat\n-R SVCNAT-SVC-A 1 -j ACCEPT\nCOMMIT\n":                     2,
		"*natx\nCOMMIT\n":                    1,
		"-A INPUT -j ACCEPT\n":               1,
		"*nat\n:SVCNAT-C - [0:0]\n":          3,
		"*nat\n:SVCNAT-C - [0:0]\n*filter\n": 3,
	} {
		before := dump(t, f, backend.IPv4)
		if re := restoreErr(t, f, backend.IPv4, payload); re.Line != line {
			t.Errorf("%q: failed at line %d (%s), want %d", payload, re.Line, re.Reason, line)
		}
		if after := dump(t, f, backend.IPv4); after != before {
			t.Errorf("%q: failed restore changed the rules", payload)
		}
	}
}

// Tables before the failing one stay committed, as with iptables-restore.
func TestFakeCommitsPerTable(t *testing.T) {
	f := NewFake()
	re := restoreErr(t, f, backend.IPv4, `*filter
:SVCNAT-FORWARD - [0:0]
-A FORWARD -j SVCNAT-FORWARD
COMMIT
*nat
:SVCNAT-SERVICES - [0:0]
-A SVCNAT-SERVICES -j SVCNAT-SVC-MISSING
COMMIT
`)
	if re.Line != 7 || re.LineText != "-A SVCNAT-SERVICES -j SVCNAT-SVC-MISSING" || re.Family != backend.IPv4 {
		t.Errorf("error at line %d %q", re.Line, re.LineText)
	}
	rs, _ := f.Save(backend.IPv4)
	if rs.Table("filter") == nil || rs.Table("filter").Chain("SVCNAT-FORWARD") == nil {
		t.Error("filter table, committed before the failure, was lost")
	}
	if rs.Table("nat") != nil {
		t.Error("nat table of the failed transaction was committed")
	}
}

func TestFakeFailureInjection(t *testing.T) {
	f := NewFake()
	mustRestore(t, f, backend.IPv4, base)
	before := dump(t, f, backend.IPv4)

	f.FailOnLine(3)
	re := restoreErr(t, f, backend.IPv4, base)
	if re.Line != 3 || !errors.Is(re, ErrInjected) || re.LineText != ":SVCNAT-SVC-A - [0:0]" {
		t.Errorf("injected failure: line %d %q %v", re.Line, re.LineText, re.Err)
	}
	if dump(t, f, backend.IPv4) != before {
		t.Error("failed restore changed the rules")
	}
	mustRestore(t, f, backend.IPv4, base) // FailOnLine is one-shot

	f.FailWhen(func(line string) bool { return strings.Contains(line, "DNAT") })
	for i := 0; i < 2; i++ {
		if re := restoreErr(t, f, backend.IPv4, base); re.Line != 6 {
			t.Errorf("FailWhen: line %d", re.Line)
		}
	}
	f.FailWhen(nil)
	mustRestore(t, f, backend.IPv4, base)

	calls := f.Restores()
	if len(calls) != 6 || calls[1].Err == nil || calls[2].Err != nil {
		t.Errorf("restore log: %d calls", len(calls))
	}
}

func TestFakeRefusesFlush(t *testing.T) {
	f := NewFake()
	if err := f.Restore(backend.IPv4, []byte(base), RestoreCounters); !errors.Is(err, ErrFlushRefused) {
		t.Errorf("restore without NoFlushTables: %v", err)
	}
	if dump(t, f, backend.IPv4) != "" {
		t.Error("refused restore changed the rules")
	}
}

func TestFakeFamiliesAreSeparate(t *testing.T) {
	f := NewFake()
	mustRestore(t, f, backend.IPv6, "*nat\n:SVCNAT-SERVICES - [0:0]\n-A SVCNAT-SERVICES -d fd00::1 -p tcp --dport 80 -j DNAT --to-destination [fd00::2]:80\nCOMMIT\n")
	if dump(t, f, backend.IPv4) != "" {
		t.Error("IPv6 restore changed IPv4 rules")
	}
	if !strings.Contains(dump(t, f, backend.IPv6), "-d fd00::1/128 ") {
		t.Error("IPv6 rule not canonical")
	}
	// A dump with counters and comments, as iptables-save -c prints, restores.
	mustRestore(t, f, backend.IPv4, "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [10:20]\n:FORWARD DROP [0:0]\n[3:4] -A INPUT -j ACCEPT\nCOMMIT\n")
	if d := dump(t, f, backend.IPv4); !strings.Contains(d, ":FORWARD DROP") || !strings.Contains(d, "-A INPUT -j ACCEPT") {
		t.Errorf("save dump did not restore:\n%s", d)
	}
}
