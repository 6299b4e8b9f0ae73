package nftables

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// needKernel skips without root, under -short, or without nft 1.0.x (the
// listing this package reads is nft 1.0's), and returns a Runner in a
// fresh namespace.
func needKernel(t *testing.T) (*Runner, *testns.NS) {
	t.Helper()
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian's nftables)")
	}
	if out, err := exec.Command("nft", "--version").Output(); err != nil || !strings.Contains(string(out), " v1.0.") {
		t.Skipf("the listing this package reads is nft 1.0's; nft --version: %s %v", out, err)
	}
	ns := testns.New(t)
	r, err := New(Options{NetNS: ns.Name, Prefix: testPrefix})
	if err != nil {
		t.Fatal(err)
	}
	return r, ns
}

// TestFakeAgreesWithKernel runs the lifecycle's transactions on the Fake
// and on a real kernel and requires both to read back alike, and as
// desired, after every step; then both remove the table.
func TestFakeAgreesWithKernel(t *testing.T) {
	r, _ := needKernel(t)
	f := NewFake(testPrefix)
	for _, batch := range []int{backend.NoStaging, 5} {
		for _, fam := range backend.Families {
			steps := lifecycle(t)
			if fam == backend.IPv6 {
				steps = lifecycle6(t)
			}
			for _, st := range steps {
				for _, k := range []backend.Kernel{r, f} {
					apply(t, k, fam, st.want, batch)
				}
				kr, err := r.Read(fam, nil)
				if err != nil {
					t.Fatal(err)
				}
				fr, _ := f.Read(fam, nil)
				if kr.Text() != fr.Text() || kr.Text() != st.want.Text() {
					t.Fatalf("%s, batch %d, %s: the kernel reads back\n%s\nthe Fake\n%s\nwant\n%s", fam, batch, st.name, kr.Text(), fr.Text(), st.want.Text())
				}
			}
			for _, k := range []backend.Kernel{r, f} {
				if ok, err := k.RemoveTable(fam, "svcnat"); !ok || err != nil {
					t.Fatalf("%s: %T RemoveTable: %v %v", fam, k, ok, err)
				}
			}
		}
	}
}

// TestKernelRefusals runs each script the Fake refuses on the kernel and
// requires it refused there too, blamed on the same line.
func TestKernelRefusals(t *testing.T) {
	r, ns := needKernel(t)
	for _, bad := range refusals {
		ns.MustExec(t, "", "nft", "flush", "ruleset")
		if err := r.runScript(backend.IPv4, []byte(refusalBase)); err != nil {
			t.Fatal(err)
		}
		payload := "add chain ip svcnat fresh\n" + bad + "\n"
		err := r.runScript(backend.IPv4, []byte(payload))
		var te *backend.TxError
		lines := strings.Split(payload, "\n")
		if !errors.As(err, &te) {
			t.Errorf("%q: the kernel took it (%v)", bad, err)
			continue
		}
		t.Logf("%q: line %d: %s", bad, te.Line, te.Reason)
		if te.Line != len(lines)-1 {
			t.Errorf("%q: nft blamed line %d %q (%s)", bad, te.Line, te.LineText, te.Reason)
		}
		if rules, ok, _ := r.ReadChain(backend.IPv4, "svcnat", "fresh"); ok {
			t.Errorf("%q: a refused script left its first line applied: %v", bad, rules)
		}
	}
}

// TestKernelLifecycle applies, changes and destroys in a namespace that
// also holds an inet filter table and an iptables-nft nat table, which
// stay byte for byte as they were; the table is gone at the end.
func TestKernelLifecycle(t *testing.T) {
	r, ns := needKernel(t)
	ns.MustExec(t, "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n", "nft", "-f", "-")
	if _, err := exec.LookPath("iptables-nft"); err == nil {
		ns.MustExec(t, "", "iptables-nft", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "80")
	}
	foreign := func() string {
		var b strings.Builder
		for _, tab := range [][]string{{"inet", "filter"}, {"ip", "nat"}} {
			out, _ := ns.Exec("", "nft", "list", "table", tab[0], tab[1])
			b.WriteString(out)
		}
		return b.String()
	}
	before := foreign()
	if !strings.Contains(before, "tcp dport 22 accept") {
		t.Fatalf("the foreign tables were not made:\n%s", before)
	}
	for _, st := range lifecycle(t) {
		apply(t, r, backend.IPv4, st.want, backend.NoStaging)
		got, err := r.Read(backend.IPv4, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The whole host's read names the foreign tables' base chains
		// too (trace --live's); svcnat's part is its table.
		got = got.Owned(testPrefix)
		if got.Text() != st.want.Text() {
			t.Fatalf("%s: read back\n%s\nwant\n%s", st.name, got.Text(), st.want.Text())
		}
		if len(got.Tables) > 0 {
			for _, c := range got.Tables[0].Chains {
				rules, ok, err := r.ReadChain(backend.IPv4, "svcnat", c.Name)
				if err != nil || !ok || !backend.EqualRules(rules, c.Rules) {
					t.Fatalf("%s: ReadChain %s: %v %v %v, want %v", st.name, c.Name, rules, ok, err, c.Rules)
				}
			}
		}
	}
	if _, ok, err := r.ReadChain(backend.IPv4, "svcnat", "services"); ok || err != nil {
		t.Fatalf("ReadChain of a deleted chain: %v %v", ok, err)
	}
	ns.MustExec(t, "", "nft", "add", "chain", "ip", "svcnat", "someones")
	if _, err := r.RemoveTable(backend.IPv4, "svcnat"); !errors.Is(err, backend.ErrTableInUse) {
		t.Fatalf("RemoveTable of a table in use: %v", err)
	}
	ns.MustExec(t, "", "nft", "delete", "chain", "ip", "svcnat", "someones")
	if ok, err := r.RemoveTable(backend.IPv4, "svcnat"); !ok || err != nil {
		t.Fatalf("RemoveTable: %v %v", ok, err)
	}
	if ok, err := r.RemoveTable(backend.IPv4, "svcnat"); ok || err != nil {
		t.Fatalf("RemoveTable of no table: %v %v", ok, err)
	}
	if rs, err := r.Read(backend.IPv4, nil); err != nil || len(rs.Owned(testPrefix).Tables) != 0 {
		t.Fatalf("after destroy: %v %v", rs, err)
	}
	if after := foreign(); after != before {
		t.Fatalf("the foreign tables changed:\n%s\nwere\n%s", after, before)
	}
}

// TestReadWholeHost: a Read without like (trace --live's) adds the base
// chains of the other tables of the family, inet ones too, without their
// rules; a plan's Read (with like) and the owned part never hold them.
func TestReadWholeHost(t *testing.T) {
	r, ns := needKernel(t)
	if _, err := ns.Exec("table inet fw {\n chain input {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n chain helper {\n }\n}\ntable ip6 other {\n chain pre {\n  type nat hook prerouting priority -100;\n }\n}\n", "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	apply(t, r, backend.IPv4, desired(t, hclCase(t, "overall"), backend.IPv4), 0)
	whole, err := r.Read(backend.IPv4, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw := whole.Table("inet fw")
	if fw == nil || len(fw.Chains) != 1 || fw.Chains[0].Name != "input" || len(fw.Chains[0].Rules) != 0 ||
		fw.Chains[0].Policy != "type filter hook input priority 0 ; policy drop ;" {
		t.Fatalf("inet fw as read: %+v", fw)
	}
	if whole.Table("other") != nil {
		t.Error("an ip6 table is read with IPv4")
	}
	if own := whole.Owned("SVCNAT"); len(own.Tables) != 1 || own.Tables[0].Name != "svcnat" {
		t.Errorf("owned tables %v", own.Tables)
	}
	planned, err := r.Read(backend.IPv4, whole)
	if err != nil {
		t.Fatal(err)
	}
	if len(planned.Tables) != 1 {
		t.Errorf("a plan's read holds %d tables, want svcnat's only", len(planned.Tables))
	}
}

// TestUpgradeFromKubeProxyShape: a table an earlier svcnat wrote in
// kube-proxy's endpoint selection (an anonymous map per service chain, an
// endpoint chain and affinity set per endpoint under affinity:
// testdata/overall.v4.kube-proxy-shape.nft, render's overall golden
// before the endpoints maps) is planned into today's in one transaction
// and staged, and reads back as desired.
func TestUpgradeFromKubeProxyShape(t *testing.T) {
	old, err := os.ReadFile("testdata/overall.v4.kube-proxy-shape.nft")
	if err != nil {
		t.Fatal(err)
	}
	want := desired(t, hclCase(t, "overall"), backend.IPv4)
	for _, batch := range []int{backend.NoStaging, 5} {
		r, ns := needKernel(t)
		if _, err := ns.Exec(string(old), "nft", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		apply(t, r, backend.IPv4, want, batch)
		got, err := r.Read(backend.IPv4, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Text() != want.Text() {
			t.Fatalf("batch %d: the upgraded table reads\n%s\nwant\n%s", batch, got.Text(), want.Text())
		}
	}
}

// eachGolden loads each of render's goldens (render/testdata/*.nft) into
// a namespace of its own and runs fn on it, with the golden's family.
func eachGolden(t *testing.T, fn func(t *testing.T, r *Runner, ns *testns.NS, fam backend.Family)) {
	goldens, err := filepath.Glob("render/testdata/*.nft")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	for _, g := range goldens {
		t.Run(filepath.Base(g), func(t *testing.T) {
			r, ns := needKernel(t)
			script, err := os.ReadFile(g)
			if err != nil {
				t.Fatal(err)
			}
			fam := backend.IPv4
			if strings.Contains(string(script), "add table ip6 ") {
				fam = backend.IPv6
			}
			ns.MustExec(t, string(script), "nft", "-f", "-")
			fn(t, r, ns, fam)
		})
	}
}
