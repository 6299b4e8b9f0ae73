package iptables

import (
	"os"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

const legacyWarning = "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them"

// iptables-nft's programs print legacyWarning whenever the legacy backend
// has tables: never the reason they failed, and never in svcnat's errors
// (the CLI says it once, in its own words: Detection.LegacyTables).
func TestLegacyWarningStaysOutOfErrors(t *testing.T) {
	dir := t.TempDir()
	shim(t, dir, "iptables-nft-restore", `
if [ "$1" = -V ]; then echo "iptables-nft-restore v1.8.9 (nf_tables)"; exit 0; fi
echo "`+legacyWarning+`" >&2
echo "iptables-nft-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?)." >&2
exit 1
`)
	// Before iptables 1.8.8 the warning came on stdout, in the dump.
	shim(t, dir, "iptables-nft-save", `
if [ "$1" = -V ]; then echo "iptables-nft-save v1.8.7 (nf_tables)"; exit 0; fi
printf '*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n`+legacyWarning+`\n'
echo "`+legacyWarning+`" >&2
[ -e `+dir+`/fail ] && { echo "iptables-nft-save: broken" >&2; exit 1; }
exit 0
`)
	// The shims alone: were one not found (a name the runner no longer
	// looks for), the real binary after it would run, as root, on the
	// machine's own rules.
	t.Setenv("PATH", dir)
	ipt, err := New(Options{Backend: NFT})
	if err != nil {
		t.Fatal(err)
	}
	re := restoreErr(t, ipt, backend.IPv4, "*nat\n-D SVCNAT-X -j ACCEPT\nCOMMIT\n")
	if re.Line != 2 || strings.Contains(re.Error(), "Warning") || strings.Contains(re.Stderr, "Warning") {
		t.Errorf("restore failure: line %d, %q, stderr %q", re.Line, re.Error(), re.Stderr)
	}
	if rs, err := ipt.Save(backend.IPv4); err != nil || rs.Table("nat") == nil {
		t.Errorf("save with the warning in its dump: %v", err)
	}
	if err := os.WriteFile(dir+"/fail", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ipt.Save(backend.IPv4); err == nil || strings.Contains(err.Error(), "Warning") || !strings.HasSuffix(err.Error(), ": iptables-nft-save: broken") {
		t.Errorf("failed save: %v", err)
	}
}

// Legacy tables beside nft, even empty ones (which is when iptables-nft
// warns), are what Detection.LegacyTables reports.
func TestSurveyCountsLegacyTables(t *testing.T) {
	ns := testns.New(t)
	d, err := Survey(ns.Name, "SVCNAT")
	if err != nil || d.LegacyTables(d.Backend) {
		t.Fatalf("fresh namespace: %v, legacy %+v", err, d.Legacy)
	}
	ns.MustExec(t, "", "iptables-legacy", "-t", "filter", "-L", "-n") // creates the (empty) table
	d, err = Survey(ns.Name, "SVCNAT")
	if err != nil || d.Backend != NFT || !d.LegacyTables(NFT) || d.LegacyTables(Legacy) || d.Legacy.Rules != 0 {
		t.Fatalf("an empty legacy filter table: %v, backend %s, legacy %+v", err, d.Backend, d.Legacy)
	}
}
