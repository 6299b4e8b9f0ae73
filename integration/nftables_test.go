package integration

// Real-kernel tests of the nftables backend that the shared suites cannot
// express in iptables-save's words: plan, apply, rollback and destroy read
// back with nft, a host's own nftables table and iptables-nft rules left
// byte for byte, and the choice between nftables and iptables.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// TestNFTablesRoundTrip: on a host with its own inet filter table and
// iptables-nft rules, plan → apply (every form of the base and rich
// configurations reads back as written: the next plan is empty) → one
// endpoint changes and the plan names only that service → rollback
// returns the first generation's table → drift in svcnat's table shows
// → destroy leaves `nft list ruleset` byte for byte as before the first
// apply. Nothing that is not svcnat's changes at any step.
func TestNFTablesRoundTrip(t *testing.T) {
	t.Parallel()
	l := newApplyLab(t, "nftables", applyBaseConfig)
	l.setConfig(applyBaseConfig, "rich.hcl", applyRichConfig)
	nftSeedForeign(t, l.ns.Name)
	before := nftRuleset(t, l.ns.Name)
	if !strings.Contains(before, "table inet filter") || !strings.Contains(before, "MASQUERADE") && !strings.Contains(before, "masquerade") {
		t.Fatalf("%s the foreign table and iptables-nft rules are not in place:\n%s", l.where(), before)
	}
	foreignSame := func(after string) {
		t.Helper()
		l.same("nft list ruleset without svcnat's tables after "+after, before, nftWithout(nftRuleset(t, l.ns.Name)))
	}

	r := l.must(2, "plan", "--detailed-exitcode")
	if !strings.Contains(r.Stdout, "+ service default/web") || !strings.Contains(r.Stdout, "backend nftables, table "+nftTableName) {
		t.Fatalf("%s plan of a namespace without svcnat's table does not add default/web on nftables: %s", l.where(), r)
	}
	r = l.must(0, "apply", "-auto-approve")
	if !strings.Contains(r.Stdout, "Apply complete!") {
		t.Fatalf("%s apply: no \"Apply complete!\": %s", l.where(), r)
	}
	foreignSame("apply")
	// Every object svcnat wrote reads back as it renders it: numgen
	// splits, affinity sets, marks, IPv6, SCTP, source ranges.
	l.must(0, "plan", "--detailed-exitcode")
	v4 := nftIn(t, l.ns.Name, "", "list", "table", "ip", nftTableName)
	for _, want := range []string{"numgen random mod 3", "10.32.0.61 . tcp . 80", "sctp . 30007", "198.51.100.0/24", "0x00004000", "affinity"} {
		if !strings.Contains(v4, want) {
			t.Fatalf("%s svcnat's ip table lacks %q; the configuration should produce it:\n%s", l.where(), want, v4)
		}
	}
	if v6 := nftIn(t, l.ns.Name, "", "list", "table", "ip6", nftTableName); !strings.Contains(v6, "fd00:32::62") {
		t.Fatalf("%s svcnat's ip6 table lacks default/api's cluster IP:\n%s", l.where(), v6)
	}
	if g := l.generation(); g != 1 {
		t.Fatalf("%s generation after the first apply: got %d, want 1", l.where(), g)
	}
	genA := nftOwned(t, l.ns.Name)

	// One endpoint of one service changes.
	l.setConfig(applyChangedAPI(), "rich.hcl", applyRichConfig)
	r = l.must(2, "plan", "--json", "--detailed-exitcode")
	var p applyPlanJSON
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
	}
	if !p.Changed || p.Backend != "nftables" || len(p.Changes) == 0 {
		t.Fatalf("%s plan --json: want changes on backend nftables, got %s", l.where(), r.Stdout)
	}
	if len(p.Services) != 1 || p.Services[0].Name != "default/api" {
		t.Fatalf("%s plan --json: want only service default/api, got %+v", l.where(), p.Services)
	}
	for _, c := range p.Changes {
		// The service's own objects, and the shared endpoints maps of its
		// protocol (endpoints-, vip-endpoints- for a chainless port),
		// where its endpoints are elements.
		own := strings.Contains(c.Chain, "default/api/") || strings.HasPrefix(c.Chain, "endpoints-") || strings.HasPrefix(c.Chain, "vip-endpoints-")
		if c.Family != "ipv4" || c.Table != nftTableName || !own {
			t.Fatalf("%s plan --json: change %+v is not one of default/api's IPv4 objects in table %s; plan:\n%s", l.where(), c, nftTableName, r.Stdout)
		}
	}
	text := l.must(0, "plan").Stdout
	if !strings.Contains(text, "~ service default/api") || !strings.Contains(text, "10.64.2.8") {
		t.Fatalf("%s plan does not name default/api's new endpoint:\n%s", l.where(), text)
	}
	for _, other := range []string{"default/web", "kube-system/dns", "default/lb", "kube-system/sctp-echo"} {
		if strings.Contains(text, other) {
			t.Fatalf("%s plan names %s, which did not change:\n%s", l.where(), other, text)
		}
	}
	l.must(0, "apply", "-auto-approve")
	l.must(0, "plan", "--detailed-exitcode")
	foreignSame("a second apply")
	if g := l.generation(); g != 2 {
		t.Fatalf("%s generation after the second apply: got %d, want 2", l.where(), g)
	}
	genB := nftOwned(t, l.ns.Name)
	if genA == genB {
		t.Fatalf("%s the change did not change svcnat's table", l.where())
	}
	l.must(0, "apply", "-auto-approve")
	if g := l.generation(); g != 2 {
		t.Fatalf("%s an empty apply recorded generation %d, want 2", l.where(), g)
	}

	l.must(0, "rollback", "-auto-approve")
	l.same("svcnat's tables after rollback and generation 1", genA, nftOwned(t, l.ns.Name))
	foreignSame("rollback")
	if g := l.generation(); g != 3 {
		t.Fatalf("%s rollback recorded generation %d, want 3", l.where(), g)
	}
	if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
		t.Fatalf("%s show after rollback: %s", l.where(), r)
	}
	l.must(2, "plan", "--detailed-exitcode") // the configuration is still B

	// Drift: someone adds a rule to a chain of svcnat's table.
	nftIn(t, l.ns.Name, "", "add", "rule", "ip", nftTableName, "services", "ip", "saddr", "1.2.3.4", "return")
	r = l.must(0, "show")
	if strings.Contains(r.Stdout, "No drift") || !strings.Contains(r.Stdout, "1.2.3.4") {
		t.Fatalf("%s show does not report the 1.2.3.4 rule added to chain services as drift: %s", l.where(), r)
	}
	if r := l.must(2, "plan", "--detailed-exitcode"); !strings.Contains(r.Stdout, "1.2.3.4") {
		t.Fatalf("%s plan does not show the drift as a change: %s", l.where(), r)
	}

	l.must(0, "destroy", "-auto-approve")
	if after := nftRuleset(t, l.ns.Name); after != before {
		t.Fatalf("%s nft list ruleset after destroy differs from before the first apply (- before, + after):\n%s", l.where(), applyDiff(before, after))
	}
	l.must(2, "plan", "--detailed-exitcode")
	if r := l.must(0, "destroy", "-auto-approve"); !strings.Contains(r.Stdout, "No changes") {
		t.Fatalf("%s a second destroy should have nothing to do: %s", l.where(), r)
	}
}

// TestNFTablesTrafficLifecycle: the same steps with real connections on a
// node whose own nftables table and iptables-nft rules are there first:
// the cluster IP and the node port reach the endpoint of each generation,
// a rollback sends them back, and destroy gives back `nft list ruleset`
// byte for byte, after which the cluster IP reaches nothing.
func TestNFTablesTrafficLifecycle(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nftables", netlab.Options{Backends: 2, HTTPPorts: []int{80}, UDPPorts: []int{}})
	nftSeedForeign(t, tl.Node.Name)
	before := nftRuleset(t, tl.Node.Name)
	web := func(i int) trService {
		s := trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(i))...)
		s.Type, s.ETP, s.Ports[0].NodePort = "NodePort", "Cluster", 30080
		return s
	}
	other := trWeb("default/other", "10.32.0.62", trEndpoints("node1", trBackendIP4(0), trBackendIP4(1))...)
	expect := func(backend, when string) {
		t.Helper()
		what := "default/web cluster IP 10.32.0.61:80 " + when
		r := trGet(t, tl.Client.NS, trURL("10.32.0.61", 80), what)
		trExpectFrom(t, r, what, backend)
		trExpectMasqueraded(t, r, what)
		what = "default/web node port 192.0.2.1:30080 " + when
		r = trGet(t, tl.Client.NS, trURL("192.0.2.1", 30080), what)
		trExpectFrom(t, r, what, backend)
		trExpectMasqueraded(t, r, what)
	}

	tl.apply(t, nil, web(0), other)
	expect("backend-0", "after the first apply")
	tl.configure(t, web(1), other)
	text := tl.SV.MustRun(t, 2, "plan", "--detailed-exitcode").Stdout
	if !strings.Contains(text, "~ service default/web") || strings.Contains(text, "default/other") {
		t.Fatalf("plan of one endpoint's change names more or less than default/web:\n%s", text)
	}
	tl.SV.MustRun(t, 0, "apply", "-auto-approve")
	expect("backend-1", "after the endpoint moved to backend-1")
	tl.SV.MustRun(t, 0, "rollback", "-auto-approve")
	expect("backend-0", "after the rollback")
	what := "default/other cluster IP 10.32.0.62:80 after the rollback"
	trExpectFrom(t, trGet(t, tl.Client.NS, trURL("10.32.0.62", 80), what), what, "backend-0", "backend-1")

	tl.SV.MustRun(t, 0, "destroy", "-auto-approve")
	if after := nftRuleset(t, tl.Node.Name); after != before {
		t.Fatalf("netns %s: nft list ruleset after destroy differs from before the first apply (- before, + after):\n%s", tl.Node.Name, applyDiff(before, after))
	}
	trExpectDropped(t, tl.Client.NS, trHostPort("10.32.0.61", 80), "no rule after destroy: forwarded into the uplink's sink")
}

// TestNFTablesBackendChoice: once svcnat's rules are in nftables, auto
// keeps them there and an iptables backend is refused, naming the table;
// once they are in iptables, --backend nftables is refused — but by apply,
// which moves them (migrate_test.go), and plan, which previews that.
// Neither a refusal nor a preview changes anything in either.
func TestNFTablesBackendChoice(t *testing.T) {
	t.Parallel()
	t.Run("nftables-then-iptables", func(t *testing.T) {
		t.Parallel()
		l := newApplyLab(t, "nftables", applyBaseConfig)
		l.must(0, "apply", "-auto-approve")
		l.sv.Backend = "auto"
		r := l.must(0, "plan", "--json", "--detailed-exitcode")
		var p applyPlanJSON
		if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
			t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
		}
		if p.Backend != "nftables" {
			t.Fatalf("%s auto after an nftables apply chose %q, want nftables: %s", l.where(), p.Backend, r)
		}
		ruleset := nftRuleset(t, l.ns.Name)
		for _, b := range []string{"iptables-nft", "iptables-legacy", "nft", "legacy"} {
			l.sv.Backend = b
			for _, cmd := range [][]string{{"plan", "-out", t.TempDir() + "/p"}, {"show"}} {
				r := l.must(1, cmd...)
				if !strings.Contains(r.Stderr, "nftables") || !strings.Contains(r.Stderr, "ip "+nftTableName) {
					t.Fatalf("%s %s --backend %s over svcnat's nftables table: want a refusal naming the table ip %s: %s", l.where(), cmd[0], b, nftTableName, r)
				}
			}
			if r := l.must(0, "plan"); !strings.Contains(r.Stdout, "Then svcnat will remove its rules from the backend it moves them from (backend nftables") {
				t.Fatalf("%s plan --backend %s over svcnat's nftables table: want the migration's two plans: %s", l.where(), b, r)
			}
		}
		if after := nftRuleset(t, l.ns.Name); after != ruleset {
			t.Fatalf("%s a refused iptables apply changed nftables:\n%s", l.where(), applyDiff(ruleset, after))
		}
		for _, b := range []string{"nft", "legacy"} {
			for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
				if s := applySave(t, l.ns, b, fam); strings.Contains(s, applyPrefix+"-") {
					t.Fatalf("%s a refused apply wrote svcnat chains to iptables-%s %s:\n%s", l.where(), b, fam, s)
				}
			}
		}
	})
	for _, b := range []string{"iptables-nft", "iptables-legacy"} {
		t.Run(b+"-then-nftables", func(t *testing.T) {
			t.Parallel()
			l := newApplyLab(t, b, applyBaseConfig)
			l.must(0, "apply", "-auto-approve")
			short := strings.TrimPrefix(b, "iptables-")
			saved := applyNormalize(applySave(t, l.ns, short, backend.IPv4), false)
			l.sv.Backend = "nftables"
			for _, cmd := range [][]string{{"plan", "-out", t.TempDir() + "/p"}, {"show"}} {
				r := l.must(1, cmd...)
				if !strings.Contains(r.Stderr, "--backend nftables") || !strings.Contains(r.Stderr, applyPrefix+"-SERVICES") {
					t.Fatalf("%s %s --backend nftables over svcnat's chains in %s: want a refusal naming them: %s", l.where(), cmd[0], b, r)
				}
			}
			if r := l.must(0, "plan"); !strings.Contains(r.Stdout, "(backend nftables, table "+nftTableName+")") ||
				!strings.Contains(r.Stdout, "Then svcnat will remove its rules from the backend it moves them from (backend "+b) {
				t.Fatalf("%s plan --backend nftables over svcnat's chains in %s: want the migration's two plans: %s", l.where(), b, r)
			}
			for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
				if nftHasTable(t, l.ns.Name, fam) {
					t.Fatalf("%s a refused nftables apply made svcnat's %s table:\n%s", l.where(), fam, nftTables(t, l.ns.Name))
				}
			}
			if got := applyNormalize(applySave(t, l.ns, short, backend.IPv4), false); got != saved {
				t.Fatalf("%s a refused nftables apply changed %s:\n%s", l.where(), b, applyDiff(saved, got))
			}
			// auto stays with them.
			l.sv.Backend = "auto"
			l.must(0, "plan", "--detailed-exitcode")
		})
	}
}
