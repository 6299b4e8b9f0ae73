package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/planner"
)

// TestTamperedPlanChangesNothing: a saved plan whose desired rules were
// edited after it was made is refused, on both backends, and leaves every
// rule of the namespace byte for byte as it was and no generation: edited
// without its digest recomputed (a DNAT to another address), or with it
// (a jump from INPUT into a chain of the editor's, a raw-table NOTRACK
// chain, an ACCEPT of everything forwarded in svcnat's own FORWARD
// chain). The plan as it was made then applies.
func TestTamperedPlanChangesNothing(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.must(0, "apply", "-auto-approve")
		l.setConfig(applyChangedAPI())
		dir := t.TempDir()
		planFile := filepath.Join(dir, "api.plan")
		l.must(2, "plan", "--detailed-exitcode", "-out", planFile)
		made, err := os.ReadFile(planFile)
		if err != nil {
			t.Fatal(err)
		}
		// edit replaces old by new in the plan's desired IPv4 rules.
		edit := func(old, new string, reseal bool) string {
			t.Helper()
			var pf map[string]any
			if err := json.Unmarshal(made, &pf); err != nil {
				t.Fatal(err)
			}
			desired := pf["desired"].(map[string]any)
			text := desired["ipv4"].(string)
			if !strings.Contains(text, old) {
				t.Fatalf("no %q in the plan's desired rules:\n%s", old, text)
			}
			desired["ipv4"] = strings.Replace(text, old, new, 1)
			data, err := json.Marshal(pf)
			if err != nil {
				t.Fatal(err)
			}
			if reseal {
				if data, err = planner.ResealPlan(data); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "tampered.plan")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
		before := l.full()
		for _, tc := range []struct {
			name, old, new string
			reseal         bool
			want           string
		}{
			{"a DNAT to another address", "--to-destination 10.64.2.8:", "--to-destination 192.0.2.66:", false,
				"the plan file was changed after it was made"},
			{"a jump from INPUT", "*filter\n", "*filter\n:" + applyPrefix + "-EVIL - [0:0]\n-A INPUT -j " + applyPrefix + "-EVIL\n" +
				"-A " + applyPrefix + "-EVIL -p tcp -m tcp --dport 22 -j DROP\n", true,
				`rule "-A INPUT -j ` + applyPrefix + `-EVIL" (table filter) is not one svcnat writes`},
			{"a raw-table NOTRACK chain", "*filter\n", "*raw\n:" + applyPrefix + "-NOTRACK - [0:0]\n-A PREROUTING -j " + applyPrefix + "-NOTRACK\n" +
				"-A " + applyPrefix + "-NOTRACK -j CT --notrack\nCOMMIT\n*filter\n", true,
				"hold table raw: svcnat writes only the nat and filter tables"},
			{"an ACCEPT of everything forwarded", "COMMIT\n*nat\n", "-A " + applyPrefix + "-FORWARD -j ACCEPT\nCOMMIT\n*nat\n", true,
				`rule "-A ` + applyPrefix + `-FORWARD -j ACCEPT" (table filter) is not one svcnat writes: svcnat writes ACCEPT in FORWARD chains only as`},
		} {
			r := l.must(1, "apply", edit(tc.old, tc.new, tc.reseal))
			if !strings.Contains(r.Stderr, tc.want) || !strings.Contains(r.Stderr, "svcnat: hint: make the plan again") {
				t.Fatalf("%s apply of a plan with %s: want %q and a hint in stderr: %s", l.where(), tc.name, tc.want, r)
			}
			l.same("rules after a refused plan with "+tc.name, before, l.full())
			if g := l.generation(); g != 1 {
				t.Fatalf("%s a refused plan with %s recorded generation %d", l.where(), tc.name, g)
			}
		}
		l.must(0, "apply", planFile)
		l.must(0, "plan", "--detailed-exitcode")
		if g := l.generation(); g != 2 {
			t.Fatalf("%s generation after applying the plan as made: got %d, want 2", l.where(), g)
		}
	})
}
