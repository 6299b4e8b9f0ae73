package integration

// Real-kernel tests of the backend choice (--backend auto, an explicit
// backend while svcnat's chains are in the other, chains in both).

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/rules"
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
				applyIPT(t, l.ns, c.seed, rules.IPv4, "-t", "filter", "-A", "INPUT", "-j", "ACCEPT")
			}
			r := l.must(2, "plan", "--json", "--detailed-exitcode")
			var p applyPlanJSON
			if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
				t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
			}
			if p.Backend != c.want {
				t.Fatalf("%s auto chose %q, want %q: %s", l.where(), p.Backend, c.want, r)
			}
			l.must(0, "apply", "-auto-approve")
			other := map[string]string{"nft": "legacy", "legacy": "nft"}[c.want]
			for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
				if s := applySave(t, l.ns, other, fam); strings.Contains(s, applyPrefix+"-") {
					t.Fatalf("%s auto should have written to %s, but %s %s holds svcnat chains:\n%s", l.where(), c.want, other, fam, s)
				}
			}
			if s := applySave(t, l.ns, c.want, rules.IPv4); !strings.Contains(s, ":"+applyPrefix+"-SERVICES") {
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
		// --backend naming the other backend is refused.
		l.sv.Backend = "legacy"
		if r := l.must(1, "apply", "-auto-approve"); !strings.Contains(r.Stderr, "other backend") {
			t.Fatalf("%s apply --backend legacy over svcnat chains in nft: want a refusal naming the other backend: %s", l.where(), r)
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
			before[b] = applyNormalize(applySave(t, l.ns, b, rules.IPv4), false) + applyNormalize(applySave(t, l.ns, b, rules.IPv6), false)
		}
		for _, cmd := range [][]string{{"plan", "--detailed-exitcode"}, {"apply", "-auto-approve"}} {
			r := l.must(1, cmd...)
			if !strings.Contains(r.Stderr, "both") || !strings.Contains(r.Stderr, "nft") || !strings.Contains(r.Stderr, "legacy") {
				t.Fatalf("%s %s with svcnat chains in both backends: want an error naming both backends: %s", l.where(), cmd[0], r)
			}
		}
		for _, b := range applyBackends {
			after := applyNormalize(applySave(t, l.ns, b, rules.IPv4), false) + applyNormalize(applySave(t, l.ns, b, rules.IPv6), false)
			if after != before[b] {
				t.Fatalf("%s a refused apply changed the %s rules:\n%s", l.where(), b, applyDiff(before[b], after))
			}
		}
	})
}
