package integration

// Helpers of the tests that run svcnat's nftables backend: they read the
// namespace's rules with nft itself, as the iptables tests read theirs
// with iptables-save.

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
)

// nftTableName is svcnat's table under the tests' prefix: ip svcnat and
// ip6 svcnat.
var nftTableName = backend.NFTTable(applyPrefix)

// nftIn runs nft with args in the namespace, stdin fed to it, and fails
// the test when it fails.
func nftIn(t testing.TB, netns, stdin string, args ...string) string {
	t.Helper()
	out, err := nftTry(netns, stdin, args...)
	if err != nil {
		t.Fatalf("[netns %s] nft %s: %v", netns, strings.Join(args, " "), err)
	}
	return out
}

// nftTry is nftIn that returns the failure, with nft's stderr.
func nftTry(netns, stdin string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return string(out), err
}

// nftRuleset is `nft list ruleset` of the namespace: every table, svcnat's
// and the others', in nft's own words.
func nftRuleset(t testing.TB, netns string) string {
	t.Helper()
	return nftIn(t, netns, "", "list", "ruleset")
}

// nftTables is `nft list tables` of the namespace, one "table FAMILY NAME"
// a line.
func nftTables(t testing.TB, netns string) string {
	t.Helper()
	return nftIn(t, netns, "", "list", "tables")
}

// nftHasTable reports whether svcnat's table of fam is in the namespace.
func nftHasTable(t testing.TB, netns string, fam backend.Family) bool {
	t.Helper()
	want := "table " + backend.NFTFamily(fam) + " " + nftTableName
	for _, line := range strings.Split(nftTables(t, netns), "\n") {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

// nftLive is svcnat's table of fam in the namespace, read as the backend
// reads it (elements sorted, so that a table made again compares equal to
// the one it replaces: nft lists a hash set in the order of its seed).
func nftLive(t testing.TB, netns, prefix string, fam backend.Family) *backend.Ruleset {
	t.Helper()
	r, err := nftables.New(nftables.Options{NetNS: netns, Prefix: prefix})
	if err != nil {
		t.Fatalf("[netns %s] %v", netns, err)
	}
	rs, err := r.Read(fam, nil)
	if err != nil {
		t.Fatalf("[netns %s] reading svcnat's %s table: %v", netns, fam, err)
	}
	return rs
}

// nftOwned is svcnat's tables of both families but their canaries, in the
// canonical text form (backend.Ruleset.Text).
func nftOwned(t testing.TB, netns string) string {
	t.Helper()
	return "## IPv4\n" + nftLive(t, netns, applyPrefix, backend.IPv4).Owned(applyPrefix).Text() +
		"## IPv6\n" + nftLive(t, netns, applyPrefix, backend.IPv6).Owned(applyPrefix).Text()
}

// nftForeignScript is a table of another program, as a host firewall
// (nftables.conf's inet filter) leaves it: base chains, a set, rules.
const nftForeignScript = `table inet filter {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.99, 198.51.100.7 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @blocked drop
		tcp dport 22 accept
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
	}
}
`

// nftSeedForeign puts the foreign nftables table and iptables-nft rules of
// both families into the namespace, as a host has them before svcnat's
// first apply; none of them stops the lab's traffic.
func nftSeedForeign(t testing.TB, netns string) {
	t.Helper()
	nftIn(t, netns, nftForeignScript, "-f", "-")
	for _, c := range []struct {
		tool string
		args string
	}{
		{"iptables-nft", "-t filter -A INPUT -s 192.0.2.9/32 -j DROP"},
		{"iptables-nft", "-t nat -N DOCKER"},
		{"iptables-nft", "-t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"},
		{"iptables-nft", "-t nat -A DOCKER -i docker0 -j RETURN"},
		{"iptables-nft", "-t mangle -A PREROUTING -i docker0 -j MARK --set-xmark 0x1/0xffffffff"},
		{"ip6tables-nft", "-t filter -A INPUT -s 2001:db8::9/128 -j DROP"},
	} {
		cmd := exec.Command("ip", append([]string{"netns", "exec", netns, c.tool, "-w", "10"}, strings.Fields(c.args)...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("[netns %s] %s %s: %v\n%s", netns, c.tool, c.args, err, out)
		}
	}
}

// nftWithout is an `nft list ruleset` listing without svcnat's tables:
// what is not svcnat's, to compare with the listing before it came.
func nftWithout(ruleset string) string {
	var b strings.Builder
	skip := false
	for _, line := range strings.SplitAfter(ruleset, "\n") {
		switch {
		case line == "table ip "+nftTableName+" {\n" || line == "table ip6 "+nftTableName+" {\n":
			skip = true
		case skip && line == "}\n":
			skip = false
		case !skip:
			b.WriteString(line)
		}
	}
	return b.String()
}
