package iptables

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// agreeSteps are applied in order to the Fake and to a real backend. Each
// step must succeed on both or fail on both at the same line, and leave
// both with the same rules.
var agreeSteps = []struct {
	name    string
	fam     backend.Family
	payload string
	fails   bool
}{
	{name: "create", payload: `*filter
:SVCNAT-FORWARD - [0:0]
:SVCNAT-SERVICES - [0:0]
-A FORWARD -m comment --comment "svcnat forwarding rules" -j SVCNAT-FORWARD
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "svcnat service portals" -j SVCNAT-SERVICES
-A SVCNAT-FORWARD -m conntrack --ctstate INVALID -j DROP
-A SVCNAT-FORWARD -m comment --comment "svcnat forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A SVCNAT-SERVICES -m comment --comment "default/empty has no endpoints" -m tcp -p tcp -d 10.32.0.9 --dport 80 -j REJECT
COMMIT
*nat
:SVCNAT-SERVICES - [0:0]
:SVCNAT-NODEPORTS - [0:0]
:SVCNAT-POSTROUTING - [0:0]
:SVCNAT-MARK-MASQ - [0:0]
:SVCNAT-SVC-AAAA - [0:0]
:SVCNAT-SEP-AAAA - [0:0]
:SVCNAT-SEP-BBBB - [0:0]
:SVCNAT-LONELY - [0:0]
-A PREROUTING -m comment --comment "svcnat service portals" -j SVCNAT-SERVICES
-A OUTPUT -m comment --comment "svcnat service portals" -j SVCNAT-SERVICES
-A POSTROUTING -m comment --comment "svcnat postrouting rules" -j SVCNAT-POSTROUTING
-A SVCNAT-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A SVCNAT-POSTROUTING -j MARK --xor-mark 0x00004000
-A SVCNAT-POSTROUTING -m comment --comment "svcnat service traffic requiring SNAT" -j MASQUERADE --random-fully
-A SVCNAT-MARK-MASQ -j MARK --or-mark 0x00004000
-A SVCNAT-SERVICES -m comment --comment "default/web cluster IP" -m tcp -p tcp -d 10.32.0.10 --dport 80 -j SVCNAT-SVC-AAAA
-A SVCNAT-SVC-AAAA -m comment --comment "default/web cluster IP" -m tcp -p tcp -d 10.32.0.10 --dport 80 ! -s 10.64.0.0/14 -j SVCNAT-MARK-MASQ
-A SVCNAT-SVC-AAAA -m comment --comment "default/web -> 10.64.0.2:80" -m statistic --mode random --probability 0.5000000000 -j SVCNAT-SEP-AAAA
-A SVCNAT-SVC-AAAA -m comment --comment "default/web -> 10.64.0.3:80" -j SVCNAT-SEP-BBBB
-A SVCNAT-SEP-AAAA -m comment --comment default/web -s 10.64.0.2 -j SVCNAT-MARK-MASQ
-A SVCNAT-SEP-AAAA -m comment --comment default/web -m tcp -p tcp -j DNAT --to-destination 10.64.0.2:80
-A SVCNAT-SEP-BBBB -m comment --comment default/web -s 10.64.0.3 -j SVCNAT-MARK-MASQ
-A SVCNAT-SEP-BBBB -m comment --comment default/web -m recent --name SVCNAT-SEP-BBBB --set -m tcp -p tcp -j DNAT --to-destination 10.64.0.3:80
-A SVCNAT-LONELY -j RETURN
-A SVCNAT-SERVICES -m comment --comment "svcnat service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j SVCNAT-NODEPORTS
COMMIT
`},
	{name: "insert", payload: `*nat
-I SVCNAT-SERVICES 2 -m comment --comment "default/db cluster IP" -p udp -m udp -d 10.32.0.11 --dport 53 -j SVCNAT-SVC-AAAA
-I PREROUTING -j RETURN
-I SVCNAT-SVC-AAAA 4 -j RETURN
COMMIT
`},
	{name: "delete rules", payload: `*nat
-D PREROUTING 1
-D SVCNAT-SERVICES -p udp -d 10.32.0.11/32 -m comment --comment "default/db cluster IP" -m udp --dport 53 -j SVCNAT-SVC-AAAA
-D SVCNAT-SVC-AAAA -j RETURN
COMMIT
`},
	{name: "redeclare flushes", payload: `*nat
:SVCNAT-SEP-AAAA - [0:0]
-A SVCNAT-SEP-AAAA -m comment --comment default/web -s 10.64.0.2/32 -j SVCNAT-MARK-MASQ
-A SVCNAT-SEP-AAAA -m comment --comment default/web -p tcp -m tcp -j DNAT --to-destination 10.64.0.2:8080
COMMIT
`},
	{name: "remove an endpoint", payload: `*nat
:SVCNAT-SVC-AAAA - [0:0]
:SVCNAT-SEP-BBBB - [0:0]
-A SVCNAT-SVC-AAAA -m comment --comment "default/web -> 10.64.0.2:80" -j SVCNAT-SEP-AAAA
-X SVCNAT-SEP-BBBB
COMMIT
`},
	{name: "missing target after a committed table", fails: true, payload: `*filter
:SVCNAT-FORWARD - [0:0]
-A SVCNAT-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:SVCNAT-SVC-AAAA - [0:0]
-A SVCNAT-SVC-AAAA -j SVCNAT-SEP-GONE
COMMIT
`},
	{name: "delete referenced chain", fails: true, payload: "*nat\n:SVCNAT-MARK-MASQ - [0:0]\n-X SVCNAT-MARK-MASQ\nCOMMIT\n"},
	{name: "delete non-empty chain", fails: true, payload: "*nat\n-X SVCNAT-LONELY\nCOMMIT\n"},
	{name: "delete missing chain", fails: true, payload: "*nat\n-X SVCNAT-NOPE\nCOMMIT\n"},
	{name: "delete missing rule", fails: true, payload: "*nat\n-D SVCNAT-LONELY -j ACCEPT\nCOMMIT\n"},
	{name: "append to missing chain", fails: true, payload: "*nat\n-A SVCNAT-NOPE -j ACCEPT\nCOMMIT\n"},
	{name: "insert past the end", fails: true, payload: "*nat\n-I SVCNAT-LONELY 3 -j ACCEPT\nCOMMIT\n"},
	{name: "new existing chain", fails: true, payload: "*nat\n-N SVCNAT-LONELY\nCOMMIT\n"},
	{name: "chain name too long", fails: true, payload: "*nat\n:SVCNAT-0123456789ABCDEFGHIJKLM - [0:0]\nCOMMIT\n"},
	{name: "DROP in nat", fails: true, payload: "*nat\n-A SVCNAT-LONELY -j DROP\nCOMMIT\n"},
	{name: "missing COMMIT", fails: true, payload: "*nat\n:SVCNAT-LONELY - [0:0]\n-A SVCNAT-LONELY -j ACCEPT\n"},
	{name: "delete every chain", fails: true, payload: "*nat\n-X\nCOMMIT\n"},
	{name: "flush, delete, new, policy", payload: `*nat
-F SVCNAT-LONELY
-X SVCNAT-LONELY
-N SVCNAT-NEW
COMMIT
*filter
:FORWARD DROP [0:0]
-P INPUT ACCEPT
COMMIT
`},
	{name: "IPv6", fam: backend.IPv6, payload: `*nat
:SVCNAT-SERVICES - [0:0]
:SVCNAT-SVC-6666 - [0:0]
-A PREROUTING -j SVCNAT-SERVICES
-A SVCNAT-SERVICES -m comment --comment "default/web6 cluster IP" -m tcp -p tcp -d fd00:32::10 --dport 80 -j SVCNAT-SVC-6666
-A SVCNAT-SVC-6666 -m recent --name SVCNAT-SVC-6666 --rcheck --seconds 10800 --reap -j RETURN
-A SVCNAT-SVC-6666 -m tcp -p tcp -j DNAT --to-destination [fd00:64::2]:80
COMMIT
*filter
:SVCNAT-SERVICES - [0:0]
-A SVCNAT-SERVICES -m tcp -p tcp -d fd00:32::9 --dport 80 -j REJECT
COMMIT
`},
	{name: "IPv6 missing target", fam: backend.IPv6, fails: true, payload: "*nat\n:SVCNAT-SERVICES - [0:0]\n-A SVCNAT-SERVICES -g SVCNAT-GONE\nCOMMIT\n"},
	{name: "kube-proxy's overall ruleset", payload: "file:rules/testdata/overall.written"},
}

// TestFakeAgreesWithKernel is the test that the Fake behaves like the
// kernel: the same payloads through the Fake and through each real
// backend give the same errors (at the same lines) and the same dumps.
func TestFakeAgreesWithKernel(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := testns.New(t)
			real := realIPT(t, ns, b)
			fake := NewFake()
			fake.SetBackend(b)
			for _, step := range agreeSteps {
				fam := step.fam
				if fam == 0 {
					fam = backend.IPv4
				}
				payload := []byte(step.payload)
				if path, ok := strings.CutPrefix(step.payload, "file:"); ok {
					var err error
					if payload, err = os.ReadFile(path); err != nil {
						t.Fatal(err)
					}
				}
				realErr := real.Restore(fam, payload, NoFlushTables)
				fakeErr := fake.Restore(fam, payload, NoFlushTables)
				if (realErr != nil) != step.fails || (fakeErr != nil) != step.fails {
					t.Fatalf("%s: want failure %v; kernel: %v; fake: %v", step.name, step.fails, realErr, fakeErr)
				}
				if step.fails {
					t.Logf("%s:\n kernel: %v\n   fake: %v", step.name, realErr, fakeErr)
					var rre, fre *backend.TxError
					if !errors.As(realErr, &rre) || !errors.As(fakeErr, &fre) || rre.Line != fre.Line {
						t.Errorf("%s: failing lines differ\n kernel: %v\n   fake: %v", step.name, realErr, fakeErr)
					}
				}
				for _, f := range []backend.Family{backend.IPv4, backend.IPv6} {
					if k, fk := normalDump(t, real, f), normalDump(t, fake, f); k != fk {
						t.Fatalf("%s: %s dumps differ\n--- kernel\n%s--- fake\n%s", step.name, f, k, fk)
					}
				}
			}
		})
	}
}

// normalDump is ipt's dump with what the backends print differently
// removed: table order, and empty tables and built-in chains (which nft
// creates on demand and legacy always has).
func normalDump(t *testing.T, ipt Interface, fam backend.Family) string {
	t.Helper()
	rs, err := ipt.Save(fam)
	if err != nil {
		t.Fatal(err)
	}
	out := &backend.Ruleset{Family: fam}
	for _, tbl := range rs.Tables {
		nt := &backend.Table{Name: tbl.Name}
		for _, c := range tbl.Chains {
			if !c.Builtin() || len(c.Rules) > 0 || c.Policy != "ACCEPT" {
				nt.Chains = append(nt.Chains, c)
			}
		}
		if len(nt.Chains) > 0 {
			out.Tables = append(out.Tables, nt)
		}
	}
	slices.SortFunc(out.Tables, func(a, b *backend.Table) int { return strings.Compare(a.Name, b.Name) })
	out.SortChains()
	var sb strings.Builder
	if err := out.WriteSave(&sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
