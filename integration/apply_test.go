package integration

// Real-kernel tests of plan, apply, saved plans, rollback, destroy and
// show. Every test builds fresh namespaces with internal/testns and runs
// on both iptables backends, passing --backend explicitly (a fresh
// namespace is empty in both, so auto would always pick nft).

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// TestApplyRoundTrip: empty namespace → changes → apply → no changes →
// change one endpoint → the plan names only that service's chains →
// apply → no changes.
func TestApplyRoundTrip(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.setConfig(applyBaseConfig, "rich.hcl", applyRichConfig)

		r := l.must(2, "plan", "--detailed-exitcode")
		if !strings.Contains(r.Stdout, "+ service default/web") || !strings.Contains(r.Stdout, "Plan: ") {
			t.Fatalf("%s plan of an empty namespace does not add default/web: %s", l.where(), r)
		}
		r = l.must(0, "apply", "-auto-approve")
		if !strings.Contains(r.Stdout, "Apply complete!") {
			t.Fatalf("%s apply: no \"Apply complete!\": %s", l.where(), r)
		}
		// Every rule svcnat wrote must read back in the form it renders:
		// probabilities, marks, masks, recent, addrtype, IPv6, SCTP.
		r = l.must(0, "plan", "--detailed-exitcode")
		if !strings.Contains(r.Stdout, "No changes.") {
			t.Fatalf("%s plan after apply: %s", l.where(), r)
		}
		for _, want := range []string{"--probability 0.33333333349", "MARK --set-xmark 0x4000/0x4000", "-m recent", "-p sctp"} {
			if !strings.Contains(l.save(backend.IPv4), want) {
				t.Fatalf("%s the live IPv4 rules lack %q; the configuration should produce it:\n%s", l.where(), want, l.save(backend.IPv4))
			}
		}
		if !strings.Contains(l.save(backend.IPv6), "fd00:32::62") {
			t.Fatalf("%s the live IPv6 rules lack default/api's cluster IP:\n%s", l.where(), l.save(backend.IPv6))
		}
		if g := l.generation(); g != 1 {
			t.Fatalf("%s generation after the first apply: got %d, want 1", l.where(), g)
		}

		// One endpoint of one service changes.
		l.setConfig(applyChangedAPI(), "rich.hcl", applyRichConfig)
		l.must(2, "plan", "--detailed-exitcode")
		r = l.must(2, "plan", "--json", "--detailed-exitcode")
		var p applyPlanJSON
		if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
			t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
		}
		if !p.Changed || p.Backend != string(backend.Name(b).Canonical()) || len(p.Changes) == 0 {
			t.Fatalf("%s plan --json: want changes on backend %s, got %s", l.where(), b, r.Stdout)
		}
		if len(p.Services) != 1 || p.Services[0].Name != "default/api" {
			t.Fatalf("%s plan --json: want only service default/api, got %+v", l.where(), p.Services)
		}
		for _, c := range p.Changes {
			if c.Service != "default/api" || c.Builtin || c.Family != "ipv4" ||
				!strings.HasPrefix(c.Chain, applyPrefix+"-SVC-") && !strings.HasPrefix(c.Chain, applyPrefix+"-SEP-") {
				t.Fatalf("%s plan --json: change %+v is not one of default/api's IPv4 service or endpoint chains; plan:\n%s", l.where(), c, r.Stdout)
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
		if g := l.generation(); g != 2 {
			t.Fatalf("%s generation after the second apply: got %d, want 2", l.where(), g)
		}
		// Applying again with nothing to do records nothing.
		l.must(0, "apply", "-auto-approve")
		if g := l.generation(); g != 2 {
			t.Fatalf("%s an empty apply recorded generation %d, want 2", l.where(), g)
		}
	})
}

// applyDockerRules adds what Docker (and an operator) leave in nat, filter
// and mangle, for IPv4 and IPv6, with the backend's own iptables.
func applyDockerRules(l *applyLab) {
	l.t.Helper()
	v4, v6 := backend.IPv4, backend.IPv6
	for _, c := range []struct {
		fam  backend.Family
		args string
	}{
		{v4, "-t nat -N DOCKER"},
		{v4, "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"},
		{v4, "-t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"},
		{v4, "-t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"},
		{v4, "-t nat -A DOCKER -i docker0 -j RETURN"},
		{v4, "-t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"},
		{v4, "-t filter -N DOCKER"},
		{v4, "-t filter -N DOCKER-USER"},
		{v4, "-t filter -N DOCKER-ISOLATION-STAGE-1"},
		{v4, "-t filter -P FORWARD DROP"},
		{v4, "-t filter -A INPUT -i lo -j ACCEPT"},
		{v4, "-t filter -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"},
		{v4, "-t filter -A FORWARD -j DOCKER-USER"},
		{v4, "-t filter -A FORWARD -j DOCKER-ISOLATION-STAGE-1"},
		{v4, "-t filter -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"},
		{v4, "-t filter -A FORWARD -o docker0 -j DOCKER"},
		{v4, "-t filter -A DOCKER-USER -j RETURN"},
		{v4, "-t filter -A DOCKER-ISOLATION-STAGE-1 -j RETURN"},
		{v4, "-t filter -A OUTPUT -o lo -j ACCEPT"},
		{v4, "-t mangle -A PREROUTING -i docker0 -j MARK --set-xmark 0x1/0xffffffff"},
		{v6, "-t nat -N DOCKER"},
		{v6, "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"},
		{v6, "-t filter -N DOCKER-USER"},
		{v6, "-t filter -A INPUT -i lo -j ACCEPT"},
		{v6, "-t filter -A FORWARD -j DOCKER-USER"},
	} {
		l.ipt(c.fam, strings.Fields(c.args)...)
	}
}

// TestApplyForeignRulesUntouched: Docker-like chains and rules are byte for
// byte the same after apply, a second apply, rollback and destroy.
func TestApplyForeignRulesUntouched(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		applyDockerRules(l)
		before := l.foreign()
		if !strings.Contains(before, ":DOCKER-USER") || !strings.Contains(before, "MASQUERADE") ||
			!strings.Contains(before, ":FORWARD DROP") {
			t.Fatalf("%s the Docker-like rules are not in place:\n%s", l.where(), before)
		}
		check := func(after string) {
			t.Helper()
			l.same("non-svcnat rules after "+after, before, l.foreign())
		}
		l.must(0, "apply", "-auto-approve")
		if !strings.Contains(l.save(backend.IPv4), ":"+applyPrefix+"-SERVICES") {
			t.Fatalf("%s apply wrote no SERVICES chain:\n%s", l.where(), l.save(backend.IPv4))
		}
		check("apply")
		l.must(0, "plan", "--detailed-exitcode")
		l.setConfig(applyChangedAPIBoth())
		l.must(0, "apply", "-auto-approve")
		check("a second apply")
		l.must(0, "rollback", "-auto-approve")
		check("rollback")
		l.must(0, "destroy", "-auto-approve")
		check("destroy")
		for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
			if s := l.save(fam); strings.Contains(s, applyPrefix+"-") {
				t.Fatalf("%s %s rules still name an svcnat chain after destroy:\n%s", l.where(), fam, s)
			}
		}
	})
}

// TestStalePlan: a saved plan made stale by a manual rule in an owned chain
// is refused and changes nothing; the same plan applies once the live rules
// are back to what it was made against.
func TestStalePlan(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.must(0, "apply", "-auto-approve")
		l.setConfig(applyChangedAPIBoth())
		planFile := filepath.Join(t.TempDir(), "api.plan")
		l.must(2, "plan", "--detailed-exitcode", "-out", planFile)

		manual := []string{"-t", "nat", "-I", applyPrefix + "-SERVICES", "-s", "1.2.3.4", "-j", "RETURN"}
		l.ipt(backend.IPv4, manual...)
		before := l.full()
		r := l.must(1, "apply", planFile)
		if !strings.Contains(r.Stderr, "stale plan") {
			t.Fatalf("%s apply of a stale plan: no \"stale plan\" in stderr: %s", l.where(), r)
		}
		if !strings.Contains(r.Stderr, "1.2.3.4") {
			t.Fatalf("%s apply of a stale plan does not show what changed since (the 1.2.3.4 rule): %s", l.where(), r)
		}
		l.same("live rules after a refused stale plan", before, l.full())
		if g := l.generation(); g != 1 {
			t.Fatalf("%s a refused plan recorded generation %d, want 1", l.where(), g)
		}

		manual[2] = "-D"
		l.ipt(backend.IPv4, manual...)
		l.must(0, "apply", planFile)
		l.must(0, "plan", "--detailed-exitcode")
		if g := l.generation(); g != 2 {
			t.Fatalf("%s generation after applying the saved plan: got %d, want 2", l.where(), g)
		}
	})
}

// TestRollbackDestroyShow: rollback returns to the previous generation's
// exact rules (and a second rollback back again), show reports drift in an
// owned chain, destroy leaves no owned chain or jump.
func TestRollbackDestroyShow(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		r := l.must(1, "rollback", "-auto-approve")
		if !strings.Contains(r.Stderr, "previous generation") {
			t.Fatalf("%s rollback with no generation: want an error about the previous generation: %s", l.where(), r)
		}
		l.must(0, "apply", "-auto-approve")
		genA := l.owned()
		if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") || !strings.Contains(r.Stdout, "service default/api") {
			t.Fatalf("%s show after apply: want default/api and no drift: %s", l.where(), r)
		}
		l.setConfig(applyChangedAPIBoth())
		l.must(0, "apply", "-auto-approve")
		genB := l.owned()
		if genA == genB {
			t.Fatalf("%s the change did not change the owned rules", l.where())
		}

		l.must(0, "rollback", "-auto-approve")
		l.same("owned rules after rollback and generation 1", genA, l.owned())
		if g := l.generation(); g != 3 {
			t.Fatalf("%s rollback recorded generation %d, want 3", l.where(), g)
		}
		if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
			t.Fatalf("%s show after rollback: %s", l.where(), r)
		}
		l.must(2, "plan", "--detailed-exitcode") // the configuration is still B
		l.must(0, "rollback", "-auto-approve")
		l.same("owned rules after a second rollback and generation 2", genB, l.owned())
		l.must(0, "plan", "--detailed-exitcode")

		// Drift: someone adds a rule to an owned chain.
		l.ipt(backend.IPv4, "-t", "nat", "-A", applyPrefix+"-SERVICES", "-s", "1.2.3.4", "-j", "RETURN")
		r = l.must(0, "show")
		if strings.Contains(r.Stdout, "No drift") || !strings.Contains(r.Stdout, "Drift") || !strings.Contains(r.Stdout, "1.2.3.4") {
			t.Fatalf("%s show does not report the 1.2.3.4 rule added to %s-SERVICES as drift: %s", l.where(), applyPrefix, r)
		}
		r = l.must(2, "plan", "--detailed-exitcode")
		if !strings.Contains(r.Stdout, "1.2.3.4") {
			t.Fatalf("%s plan does not show the drift as a change: %s", l.where(), r)
		}

		l.must(0, "destroy", "-auto-approve")
		for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
			if s := l.save(fam); strings.Contains(s, applyPrefix+"-") {
				t.Fatalf("%s %s rules still name an svcnat chain after destroy:\n%s", l.where(), fam, s)
			}
		}
		l.must(2, "plan", "--detailed-exitcode")
		if r := l.must(0, "destroy", "-auto-approve"); !strings.Contains(r.Stdout, "No changes") {
			t.Fatalf("%s a second destroy should have nothing to do: %s", l.where(), r)
		}
	})
}
