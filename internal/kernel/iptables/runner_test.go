package iptables

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

var backends = []Backend{NFT, Legacy}

// realIPT returns the real runner for backend b in namespace ns; the test
// is skipped when the backend's binaries are missing.
func realIPT(t *testing.T, ns *testns.NS, b Backend) Interface {
	t.Helper()
	if _, err := exec.LookPath("iptables-" + string(b) + "-restore"); err != nil {
		t.Skipf("no iptables-%s-restore on PATH", b)
	}
	ipt, err := New(Options{Backend: b, NetNS: ns.Name, Wait: 5 * time.Second, ChainPrefix: "SVCNAT"})
	if err != nil {
		t.Fatal(err)
	}
	if ipt.Name() != b || ipt.(*runner).version.Mode != versionMode(b) {
		t.Fatalf("runner for %s reports %s %s", b, ipt.Name(), ipt.Version())
	}
	return ipt
}

// A payload with a user chain and a jump from PREROUTING comes back from
// iptables-save in the namespace, and only there, and only in its backend.
func TestRealRestoreAndSave(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := testns.New(t)
			ipt := realIPT(t, ns, b)
			mustRestore(t, ipt, backend.IPv4, base)
			rs, err := ipt.Save(backend.IPv4)
			raw := dump(t, ipt, backend.IPv4)
			if err != nil {
				t.Fatal(err)
			}
			nat := rs.Table("nat")
			if nat == nil || nat.Chain("SVCNAT-SVC-A") == nil {
				t.Fatalf("chain missing from the dump:\n%s", raw)
			}
			want := []string{
				`-A PREROUTING -m comment --comment "svcnat service portals" -j SVCNAT-SERVICES`,
				`-A SVCNAT-SERVICES -d 10.32.0.1/32 -p tcp -m tcp --dport 80 -j SVCNAT-SVC-A`,
				`-A SVCNAT-SVC-A -p tcp -j DNAT --to-destination 10.64.0.2:80`,
			}
			var got []string
			for _, c := range []string{"PREROUTING", "SVCNAT-SERVICES", "SVCNAT-SVC-A"} {
				for _, r := range nat.Chain(c).Rules {
					got = append(got, r.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("saved rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			other := Legacy
			if b == Legacy {
				other = NFT
			}
			if out, _ := ns.Exec("", "iptables-"+string(other)+"-save"); strings.Contains(out, "SVCNAT") {
				t.Errorf("the %s backend sees the %s rules", other, b)
			}
			// A single-chain read prints what the full save prints.
			for _, c := range nat.Chains {
				got, ok, err := ipt.ReadChain(backend.IPv4, "nat", c.Name)
				if err != nil || !ok || len(got) != len(c.Rules) {
					t.Fatalf("ReadChain(nat, %s) = %v, %v, %v; save has %v", c.Name, got, ok, err, c.Rules)
				}
				for i := range got {
					if got[i].String() != c.Rules[i].String() {
						t.Errorf("ReadChain(nat, %s) rule %d: %s, save says %s", c.Name, i, got[i], c.Rules[i])
					}
				}
			}
			for _, table := range []string{"nat", "mangle"} { // mangle: a table that does not exist
				if got, ok, err := ipt.ReadChain(backend.IPv4, table, "SVCNAT-NONE"); err != nil || ok {
					t.Errorf("ReadChain(%s) of a missing chain = %v, %v, %v", table, got, ok, err)
				}
			}
			if rs6, err := ipt.Save(backend.IPv6); err != nil || rs6.RuleCount() != 0 {
				t.Errorf("IPv6 not empty: %v", err)
			}
		})
	}
}

// What each backend prints for a bad payload becomes a *backend.TxError
// naming the payload line, with tables before the failing one committed.
func TestRealRestoreErrors(t *testing.T) {
	cases := []struct {
		name, payload string
		line          int
	}{
		{"missing jump target", "*filter\n:SVCNAT-FORWARD - [0:0]\nCOMMIT\n*nat\n:SVCNAT-B - [0:0]\n-A SVCNAT-B -j SVCNAT-NOPE\n-A SVCNAT-B -j RETURN\nCOMMIT\n", 6},
		{"delete missing rule", "*nat\n:SVCNAT-B - [0:0]\n-D SVCNAT-B -j ACCEPT\nCOMMIT\n", 3},
		{"delete referenced chain", "*nat\n:SVCNAT-B - [0:0]\n-A PREROUTING -j SVCNAT-B\n-X SVCNAT-B\nCOMMIT\n", 4},
		{"unknown option", "*nat\n:SVCNAT-B - [0:0]\n-A SVCNAT-B --bogus\nCOMMIT\n", 3},
		{"missing COMMIT", "*nat\n:SVCNAT-B - [0:0]\n", 3},
	}
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := testns.New(t)
			ipt := realIPT(t, ns, b)
			for _, tc := range cases {
				err := ipt.Restore(backend.IPv4, []byte(tc.payload), NoFlushTables)
				var re *backend.TxError
				if !errors.As(err, &re) {
					t.Fatalf("%s: want a *backend.TxError, got %v", tc.name, err)
				}
				want := strings.Split(tc.payload, "\n")[tc.line-1]
				if re.Line != tc.line || re.LineText != want || re.Stderr == "" || re.Family != backend.IPv4 {
					t.Errorf("%s: line %d %q, want %d %q\nstderr: %s", tc.name, re.Line, re.LineText, tc.line, want, re.Stderr)
				}
				if !strings.HasPrefix(err.Error(), "restoring IPv4 rules: iptables-restore rejected the payload at line") {
					t.Errorf("%s: error reads %q", tc.name, err)
				}
				t.Logf("%s: %v", tc.name, err)
			}
			rs, _ := ipt.Save(backend.IPv4)
			raw := dump(t, ipt, backend.IPv4)
			if rs.Table("filter") == nil || rs.Table("filter").Chain("SVCNAT-FORWARD") == nil {
				t.Errorf("filter, committed before nat failed, is missing:\n%s", raw)
			}
			if nat := rs.Table("nat"); nat != nil && nat.Chain("SVCNAT-B") != nil {
				t.Errorf("a failed nat transaction was committed:\n%s", raw)
			}
		})
	}
}

// A held xtables lock is ErrLocked. The lock file is a private one
// (XTABLES_LOCKFILE), so the host's iptables users are not held up.
func TestRealLocked(t *testing.T) {
	ns := testns.New(t)
	lock := filepath.Join(t.TempDir(), "xtables.lock")
	t.Setenv("XTABLES_LOCKFILE", lock)
	fd, err := os.Create(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("iptables-legacy-restore"); err != nil {
		t.Skip("no iptables-legacy-restore")
	}
	ipt, err := New(Options{Backend: Legacy, NetNS: ns.Name, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = ipt.Restore(backend.IPv4, []byte("*filter\nCOMMIT\n"), NoFlushTables)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
}

// New opens the namespace it is given before anything else, so a missing
// one is an error now rather than at the first save.
func TestNewRefusesAMissingNamespace(t *testing.T) {
	if _, err := New(Options{Backend: NFT, NetNS: "svcnat-no-such-namespace"}); err == nil {
		t.Error("New accepted a missing namespace")
	}
}

func TestRestoreRefusesFlush(t *testing.T) {
	r := &runner{backend: NFT, bins: map[backend.Family]binaries{backend.IPv4: {save: "/nonexistent", restore: "/nonexistent"}}}
	if err := r.Restore(backend.IPv4, []byte("*nat\nCOMMIT\n"), 0); !errors.Is(err, ErrFlushRefused) {
		t.Errorf("want ErrFlushRefused, got %v", err)
	}
}

// shim writes an executable script into dir.
func shim(t *testing.T, dir, name, body string) {
	t.Helper()
	script := "#!/bin/sh\nPATH=/usr/bin:/bin\n" + body
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// The binaries come from PATH: a shim placed first is the one executed,
// with --noflush and -w, the payload on stdin, and its stderr kept.
func TestPathShimIsExecuted(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	shim(t, dir, "iptables-nft-restore", `
if [ "$1" = -V ]; then echo "iptables-nft-restore v1.8.9 (nf_tables)"; exit 0; fi
echo "args: $*" > `+log+`
cat >> `+log+`
if grep -q FAILME `+log+`; then echo "iptables-nft-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1; fi
`)
	shim(t, dir, "iptables-nft-save", `
if [ "$1" = -V ]; then echo "iptables-nft-save v1.8.9 (nf_tables)"; exit 0; fi
printf '# Generated by shim\n*nat\n:PREROUTING ACCEPT [0:0]\n:SVCNAT-SHIM - [0:0]\n-A PREROUTING -j SVCNAT-SHIM\nCOMMIT\n'
`)
	// The shims alone: were one not found (a name the runner no longer
	// looks for), the real binary after it would run, as root, on the
	// machine's own rules.
	t.Setenv("PATH", dir)

	ipt, err := New(Options{Backend: NFT, Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mustRestore(t, ipt, backend.IPv4, "*nat\n:SVCNAT-X - [0:0]\nCOMMIT\n")
	got, _ := os.ReadFile(log)
	if want := "args: --noflush -w 3\n*nat\n:SVCNAT-X - [0:0]\nCOMMIT\n"; string(got) != want {
		t.Errorf("shim saw:\n%s\nwant:\n%s", got, want)
	}
	rs, err := ipt.Save(backend.IPv4)
	if err != nil || rs.Table("nat").Chain("SVCNAT-SHIM") == nil {
		t.Errorf("Save did not run the shim: %v", err)
	}
	re := restoreErr(t, ipt, backend.IPv4, "*nat\n-D SVCNAT-X FAILME\nCOMMIT\n")
	if re.Line != 2 || re.LineText != "-D SVCNAT-X FAILME" || !strings.Contains(re.Stderr, "Bad rule") {
		t.Errorf("shim failure: %+v", re)
	}
}

// Without the explicit variants, plain iptables-save/-restore are used
// only for the backend their -V reports.
func TestPlainBinariesFallback(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"iptables-save", "iptables-restore"} {
		shim(t, dir, name, `if [ "$1" = -V ]; then echo "`+name+` v1.8.7 (legacy)"; exit 0; fi
echo "*filter"; echo COMMIT
`)
	}
	t.Setenv("PATH", dir)
	ipt, err := New(Options{Backend: Legacy})
	if err != nil {
		t.Fatal(err)
	}
	if v := ipt.(*runner).version; v != (Version{1, 8, 7, "legacy"}) {
		t.Errorf("version %v", v)
	}
	if _, err := ipt.Save(backend.IPv6); err == nil {
		t.Error("IPv6 without ip6tables binaries should fail")
	}
	_, err = New(Options{Backend: NFT})
	if err == nil || !strings.Contains(err.Error(), "iptables-save is legacy, not the iptables-nft backend") {
		t.Errorf("nft through legacy binaries: %v", err)
	}
}
