package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/planner"
)

// savedWeb is a saved plan of web made on h and read back, as apply
// PLANFILE reads it, with the bytes of its file.
func savedWeb(t *testing.T, h *testHost) (*planner.Plan, []byte) {
	t.Helper()
	p, err := h.e.Plan(parse(t, web), "n1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := planner.MarshalPlan(p, "sha256:cfg")
	if err != nil {
		t.Fatal(err)
	}
	saved, _, err := planner.UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		t.Fatal(err)
	}
	return saved, data
}

// TestApplySavedRefusesRulesSvcnatNeverWrites: the desired rules of a
// saved plan are data anyone who can write the file chooses. Whoever
// edits them, digest recomputed or not, gets no rule in that svcnat
// would not have written: ApplySaved checks them itself, whatever read
// the plan, and a refused plan changes nothing and records nothing.
func TestApplySavedRefusesRulesSvcnatNeverWrites(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{
			name: "a chain of its own jumped to from INPUT",
			old:  "*filter\n",
			new: "*filter\n:SVCNAT-EVIL - [0:0]\n-A INPUT -j SVCNAT-EVIL\n" +
				"-A SVCNAT-EVIL -p tcp -m tcp --dport 22 -j DROP\n",
			want: `"-A INPUT -j SVCNAT-EVIL"`,
		},
		{
			name: "a raw table NOTRACK chain",
			old:  "*filter\n",
			new: "*raw\n:SVCNAT-NOTRACK - [0:0]\n-A PREROUTING -j SVCNAT-NOTRACK\n" +
				"-A SVCNAT-NOTRACK -j CT --notrack\nCOMMIT\n*filter\n",
			want: "table raw",
		},
		{
			name: "an owned chain of no kind svcnat names",
			old:  "COMMIT\n*nat\n",
			new:  "-A SVCNAT-SERVICES -j SVCNAT-EVIL\n:SVCNAT-EVIL - [0:0]\n-A SVCNAT-EVIL -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n*nat\n",
			want: "SVCNAT-EVIL",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			saved, _ := savedWeb(t, h)
			text := saved.Desired[backend.IPv4].Text()
			if !strings.Contains(text, tc.old) {
				t.Fatalf("no %q in the desired rules:\n%s", tc.old, text)
			}
			evil, err := rules.ParseSave(backend.IPv4, strings.NewReader(strings.Replace(text, tc.old, tc.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			tampered := planner.New(saved.Prefix, saved.Backend, map[backend.Family]*backend.Ruleset{backend.IPv4: evil}, saved.Live)
			// New keeps only what svcnat owns (nat and filter): a plan
			// value holds whatever its file said.
			tampered.Desired[backend.IPv4] = evil
			if tampered.Fingerprint != saved.Fingerprint {
				t.Fatal("the tampered plan is stale: it tests nothing")
			}
			before := h.text(t)
			_, err = h.e.ApplySaved(context.Background(), tampered, "sha256:cfg")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "nothing was changed") {
				t.Fatalf("ApplySaved of a tampered plan: %v, want an error naming %s", err, tc.want)
			}
			if after := h.text(t); after != before {
				t.Fatalf("a refused plan changed the rules:\n%s", after)
			}
			if h.state(t).Generation != 0 {
				t.Fatal("a refused plan recorded a generation")
			}
			// The plan as it was made still applies.
			if res, err := h.e.ApplySaved(context.Background(), saved, "sha256:cfg"); err != nil || res.Generation != 1 {
				t.Fatalf("ApplySaved of the untouched plan: %v", err)
			}
		})
	}
}

// TestSavedPlanFileEditedIsRefused: an edit of a plan file's desired rules
// that svcnat's structural check cannot see (a DNAT to another address, in
// the chain of an endpoint) is refused by the digest recorded when the plan
// was made.
func TestSavedPlanFileEditedIsRefused(t *testing.T) {
	h := newHost(t)
	_, data := savedWeb(t, h)
	edited := strings.Replace(string(data), "--to-destination 10.64.1.2:80", "--to-destination 192.0.2.66:80", 1)
	if edited == string(data) {
		t.Fatal("no DNAT to 10.64.1.2:80 in the plan file")
	}
	p, _, err := planner.UnmarshalPlan([]byte(edited), kernel.Pure)
	if err == nil {
		_, err = h.e.ApplySaved(context.Background(), p, "sha256:cfg")
		t.Fatalf("an edited plan file was read (apply: %v)", err)
	}
	if !strings.Contains(err.Error(), "changed after it was made") {
		t.Fatalf("err = %v", err)
	}
}
