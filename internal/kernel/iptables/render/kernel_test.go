package render

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/testns"
)

// ipBackend names the restore and save binaries of one iptables backend.
type ipBackend struct {
	name          string
	restore, save map[rules.Family]string
}

var backends = []ipBackend{
	{name: "nft",
		restore: map[rules.Family]string{rules.IPv4: "iptables-nft-restore", rules.IPv6: "ip6tables-nft-restore"},
		save:    map[rules.Family]string{rules.IPv4: "iptables-nft-save", rules.IPv6: "ip6tables-nft-save"}},
	{name: "legacy",
		restore: map[rules.Family]string{rules.IPv4: "iptables-legacy-restore", rules.IPv6: "ip6tables-legacy-restore"},
		save:    map[rules.Family]string{rules.IPv4: "iptables-legacy-save", rules.IPv6: "ip6tables-legacy-save"}},
}

// TestKernelRoundTrip loads every golden case's canonical rules into a
// fresh network namespace with iptables-restore --noflush, reads them back
// with iptables-save and requires every chain the render produced, built-in
// chains included, to hold exactly the rendered rules, string for string,
// on the nft and the legacy backend. This is what makes a plan right after
// an apply empty.
func TestKernelRoundTrip(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	for _, be := range backends {
		for _, bin := range append(mapValues(be.restore), mapValues(be.save)...) {
			if _, err := exec.LookPath(bin); err != nil {
				t.Skipf("%s backend: %s not found", be.name, bin)
			}
		}
	}
	for _, tc := range goldenCases() {
		res, err := Render(tc.cfg, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, be := range backends {
			t.Run(tc.name+"/"+be.name, func(t *testing.T) {
				t.Parallel()
				ns := testns.New(t)
				for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
					if rs := res.Rulesets[fam]; rs != nil {
						roundTrip(t, ns, be, rs)
					}
				}
			})
		}
	}
}

func roundTrip(t *testing.T, ns *testns.NS, be ipBackend, rs *rules.Ruleset) {
	t.Helper()
	var payload bytes.Buffer
	if err := rules.WriteRestore(rs, &payload); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Exec(payload.String(), be.restore[rs.Family], "--noflush"); err != nil {
		t.Fatalf("%s restore: %v\npayload:\n%s", rs.Family, err, numbered(payload.String()))
	}
	out := ns.MustExec(t, "", be.save[rs.Family])
	saved, err := rules.ParseSave(rs.Family, strings.NewReader(out))
	if err != nil {
		t.Fatalf("%s: parsing iptables-save output: %v\n%s", rs.Family, err, out)
	}
	for _, tbl := range rs.Tables {
		st := saved.Table(tbl.Name)
		if st == nil {
			t.Errorf("%s %s: table missing from iptables-save output", rs.Family, tbl.Name)
			continue
		}
		for _, c := range tbl.Chains {
			want := ruleStrings(c)
			var got []string
			if sc := st.Chain(c.Name); sc == nil {
				t.Errorf("%s %s: chain %s missing after restore", rs.Family, tbl.Name, c.Name)
				continue
			} else {
				got = ruleStrings(sc)
			}
			if !slices.Equal(want, got) {
				t.Errorf("%s %s %s: the kernel echoes the rules differently\nrendered:\n  %s\nsaved:\n  %s",
					rs.Family, tbl.Name, c.Name, strings.Join(want, "\n  "), strings.Join(got, "\n  "))
			}
		}
		// The namespace was empty: anything else is a built-in chain the
		// render does not use, and it must be empty too.
		for _, sc := range st.Chains {
			if tbl.Chain(sc.Name) == nil && (!sc.Builtin() || len(sc.Rules) > 0) {
				t.Errorf("%s %s: unexpected chain %s with %d rules", rs.Family, tbl.Name, sc.Name, len(sc.Rules))
			}
		}
	}
}

func ruleStrings(c *rules.Chain) []string {
	var out []string
	for _, r := range c.Rules {
		out = append(out, r.String())
	}
	return out
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

func mapValues(m map[rules.Family]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
