package integration

// Real-kernel tests of the backend choice (--backend auto, an explicit
// backend while svcnat's chains are in the other, chains in both).

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// TestBackendAuto: --backend auto writes where rules already are (nft when
// there are none) and refuses a namespace with svcnat chains in both.
func TestBackendAuto(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, seed, want string
	}{
		{"legacy-rules", "legacy", "legacy"},
		{"nft-rules", "nft", "nft"},
		{"empty", "", "nft"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newApplyLab(t, "auto", applyBaseConfig)
			if c.seed != "" {
				applyIPT(t, l.ns, c.seed, backend.IPv4, "-t", "filter", "-A", "INPUT", "-j", "ACCEPT")
			}
			r := l.must(2, "plan", "--json", "--detailed-exitcode")
			var p applyPlanJSON
			if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
				t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
			}
			if p.Backend != string(backend.Name(c.want).Canonical()) {
				t.Fatalf("%s auto chose %q, want %q: %s", l.where(), p.Backend, c.want, r)
			}
			l.must(0, "apply", "-auto-approve")
			other := map[string]string{"nft": "legacy", "legacy": "nft"}[c.want]
			for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
				if s := applySave(t, l.ns, other, fam); strings.Contains(s, applyPrefix+"-") {
					t.Fatalf("%s auto should have written to %s, but %s %s holds svcnat chains:\n%s", l.where(), c.want, other, fam, s)
				}
			}
			if s := applySave(t, l.ns, c.want, backend.IPv4); !strings.Contains(s, ":"+applyPrefix+"-SERVICES") {
				t.Fatalf("%s auto apply wrote no %s-SERVICES to %s:\n%s", l.where(), applyPrefix, c.want, s)
			}
			// svcnat's own chains keep it on that backend.
			l.must(0, "plan", "--detailed-exitcode")
		})
	}
	t.Run("both-backends", func(t *testing.T) {
		t.Parallel()
		l := newApplyLab(t, "auto", applyBaseConfig)
		l.sv.Backend = "nft"
		l.must(0, "apply", "-auto-approve")
		// svcnat will not write a second set itself: an explicit
		// --backend naming the other backend is refused (but by apply,
		// which moves the set: TestMigrateKeepsTraffic), and plan
		// previews that move, changing nothing.
		l.sv.Backend = "legacy"
		if r := l.must(1, "plan", "-out", t.TempDir()+"/legacy.plan"); !strings.Contains(r.Stderr, "other backend") {
			t.Fatalf("%s plan -out --backend legacy over svcnat chains in nft: want a refusal naming the other backend: %s", l.where(), r)
		}
		if r := l.must(2, "plan", "--detailed-exitcode"); !strings.Contains(r.Stdout, "(backend iptables-legacy, chains "+applyPrefix+"-*)") ||
			!strings.Contains(r.Stdout, "Then svcnat will remove its rules from the backend it moves them from (backend iptables-nft,") {
			t.Fatalf("%s plan --backend legacy over svcnat chains in nft: want the migration's two plans: %s", l.where(), r)
		}
		if s := applySave(t, l.ns, "legacy", backend.IPv4); strings.Contains(s, applyPrefix+"-") {
			t.Fatalf("%s plan --backend legacy wrote to legacy:\n%s", l.where(), s)
		}
		// Someone else does: the rendered rules loaded into legacy by hand.
		payload := l.must(0, "render").Stdout
		v4, v6, _ := strings.Cut(payload, "# IPv6")
		l.ns.MustExec(t, v4, "iptables-legacy-restore", "--noflush")
		if v6 != "" {
			l.ns.MustExec(t, "# IPv6"+v6, "ip6tables-legacy-restore", "--noflush")
		}
		l.sv.Backend = "auto"
		before := map[string]string{}
		for _, b := range applyBackends {
			before[b] = applyNormalize(applySave(t, l.ns, b, backend.IPv4), false) + applyNormalize(applySave(t, l.ns, b, backend.IPv6), false)
		}
		for _, cmd := range [][]string{{"plan", "--detailed-exitcode"}, {"apply", "-auto-approve"}} {
			r := l.must(1, cmd...)
			if !strings.Contains(r.Stderr, "both") || !strings.Contains(r.Stderr, "nft") || !strings.Contains(r.Stderr, "legacy") {
				t.Fatalf("%s %s with svcnat chains in both backends: want an error naming both backends: %s", l.where(), cmd[0], r)
			}
		}
		for _, b := range applyBackends {
			after := applyNormalize(applySave(t, l.ns, b, backend.IPv4), false) + applyNormalize(applySave(t, l.ns, b, backend.IPv6), false)
			if after != before[b] {
				t.Fatalf("%s a refused apply changed the %s rules:\n%s", l.where(), b, applyDiff(before[b], after))
			}
		}
	})
}

// TestBackendSplitBrain: with svcnat's chains in both backends, auto still
// refuses with the hint to destroy one set, but an explicit --backend
// works on that backend, warning that the other also holds svcnat's
// chains: destroy --backend X removes X's set only, and the other set,
// its record and its plan are untouched.
func TestBackendSplitBrain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ applied, copied string }{{"nft", "legacy"}, {"legacy", "nft"}} {
		t.Run("applied-"+c.applied, func(t *testing.T) {
			t.Parallel()
			l := newApplyLab(t, c.applied, applyBaseConfig)
			l.must(0, "apply", "-auto-approve")
			// A second set in the other backend, as a boot-time restore
			// of saved rules into the wrong backend would leave it.
			payload := l.must(0, "render").Stdout
			v4, v6, _ := strings.Cut(payload, "# IPv6")
			l.ns.MustExec(t, v4, "iptables-"+c.copied+"-restore", "--noflush")
			if v6 != "" {
				l.ns.MustExec(t, "# IPv6"+v6, "ip6tables-"+c.copied+"-restore", "--noflush")
			}
			owned := func(b string) string {
				var out string
				for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
					rs, err := rules.ParseSave(fam, strings.NewReader(applySave(t, l.ns, b, fam)))
					if err != nil {
						t.Fatal(err)
					}
					out += rs.Owned(applyPrefix).Text()
				}
				return out
			}
			kept := owned(c.applied)

			l.sv.Backend = "auto"
			r := l.must(1, "plan")
			if !strings.Contains(r.Stderr, "destroy --backend") {
				t.Fatalf("%s auto with svcnat chains in both backends: want a refusal with the destroy --backend hint: %s", l.where(), r)
			}

			// An explicit backend works there, and warns about the other.
			l.sv.Backend = c.copied
			r = l.must(0, "plan", "--detailed-exitcode")
			if !strings.Contains(r.Stderr, "warning") || !strings.Contains(r.Stderr, c.applied) {
				t.Fatalf("%s plan --backend %s: want a warning that %s also holds svcnat's chains: %s", l.where(), c.copied, c.applied, r)
			}
			r = l.must(0, "destroy", "-auto-approve")
			if !strings.Contains(r.Stderr, "warning") {
				t.Fatalf("%s destroy --backend %s: want a warning about the other backend: %s", l.where(), c.copied, r)
			}
			if s := owned(c.copied); s != "" {
				t.Fatalf("%s destroy --backend %s left svcnat's chains there:\n%s", l.where(), c.copied, s)
			}
			l.same("owned rules of the backend destroy was not asked for", kept, owned(c.applied))

			// One set is left: auto finds it, and its record still
			// describes it.
			l.sv.Backend = "auto"
			r = l.must(0, "plan", "--detailed-exitcode", "--json")
			if !strings.Contains(r.Stdout, `"backend": "`+string(backend.Name(c.applied).Canonical())+`"`) {
				t.Fatalf("%s after destroying the %s set, auto should choose %s: %s", l.where(), c.copied, c.applied, r)
			}
			if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
				t.Fatalf("%s show after destroying the other backend's set: want the record of the %s set intact: %s", l.where(), c.applied, r)
			}
		})
	}
}
