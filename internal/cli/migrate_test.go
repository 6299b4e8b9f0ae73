package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
	"github.com/svcnat/svcnat/internal/state"
)

// twoBackends gives h an nftables fake beside its iptables one, opened as
// kernel.Open opens them: auto keeps the backend holding svcnat's rules;
// an explicit other backend is refused (ErrOtherBackend) unless the
// options migrate, when the holder comes as Detection.From; rules in both
// refuse auto and let an explicit backend through with a warning.
func twoBackends(h *fakeHost) *nftables.Fake {
	nft := nftables.NewFake("SVCNAT")
	holds := func(k backend.Kernel) bool {
		for _, f := range backend.Families {
			if rs, err := k.Read(f, nil); err == nil && rs.Owned("SVCNAT").RuleCount() > 0 {
				return true
			}
		}
		return false
	}
	h.host = func(o engine.HostOptions) (*engine.Host, error) {
		inNFT, inIPT := holds(nft), holds(h.fake)
		holder := backend.Kernel(h.fake) // also where nothing holds them
		if inNFT {
			holder = nft
		}
		want := map[backend.Name]backend.Kernel{kernel.NFTables: nft, h.fake.Name(): h.fake}[o.Backend.Canonical()]
		switch {
		case want == nil && inNFT && inIPT:
			return nil, fmt.Errorf("%w: nftables and iptables", kernel.ErrBothBackends)
		case want == nil:
			return &engine.Host{Kernel: holder}, nil
		case inNFT && inIPT:
			other := map[bool]backend.Name{true: kernel.NFTables, false: h.fake.Name()}[want == backend.Kernel(h.fake)]
			return &engine.Host{Kernel: want, Detection: kernel.Detection{Other: other, OtherOwned: []string{"IPv4 svcnat"}}}, nil
		case want == holder || !inNFT && !inIPT:
			return &engine.Host{Kernel: want}, nil
		case !o.Migrate:
			return nil, fmt.Errorf("--backend %s, but svcnat's rules are in the %s backend; nothing was changed: %w", want.Name(), holder.Name(), kernel.ErrOtherBackend)
		}
		return &engine.Host{Kernel: want, Detection: kernel.Detection{From: holder}}, nil
	}
	return nft
}

func (h *fakeHost) state() *state.State {
	h.t.Helper()
	d, err := state.Open(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := d.Load()
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// nftRules is what the nftables fake holds, as text.
func nftRules(t *testing.T, nft *nftables.Fake) string {
	t.Helper()
	rs, err := nft.Read(backend.IPv4, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Text()
}

// TestApplyBackendMigrates: apply --backend nftables on a host whose
// rules are in iptables shows both plans, asks once, moves the rules and
// says so; apply --backend iptables-nft moves them back.
func TestApplyBackendMigrates(t *testing.T) {
	h := newFakeHost(t)
	nft := twoBackends(h)
	h.must(ExitOK, "apply", "-auto-approve")
	iptBefore := h.rules()

	h.terminal, h.stdin = true, strings.NewReader("yes\n")
	out := h.must(ExitOK, "apply", "--backend", "nftables")
	for _, want := range []string{
		"svcnat will perform the following actions (backend nftables, table svcnat):",
		"Then svcnat will remove its rules from the backend it moves them from (backend iptables-nft, chains SVCNAT-*):",
		"  - chain SVCNAT-SERVICES",
		"Apply complete! ",
		"generation 2 recorded in " + h.stateDir + ".\nRemoved svcnat's chains from the iptables-nft backend (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --backend nftables: no %q in\n%s", want, out)
		}
	}
	if n := strings.Count(out, "Do you want to perform these actions?"); n != 1 {
		t.Errorf("asked %d times, want once:\n%s", n, out)
	}
	if strings.Contains(h.rules(), "SVCNAT") {
		t.Errorf("iptables still holds svcnat's chains:\n%s", h.rules())
	}
	if rs, _ := nft.Read(backend.IPv4, nil); rs.Table("svcnat") == nil || len(rs.Table("svcnat").Chains) == 0 {
		t.Errorf("nftables holds no ip svcnat table:\n%s", rs.Text())
	}
	if st := h.state(); st.Backend != kernel.NFTables || st.Generation != 2 {
		t.Errorf("state records %s generation %d, want nftables generation 2", st.Backend, st.Generation)
	}
	// history tells the move from an apply (state keeps what moved).
	if out := h.must(ExitOK, "history"); !strings.Contains(out, "moved from iptables-nft to nftables") {
		t.Errorf("history after the migration does not say it moved the rules:\n%s", out)
	}
	if g := h.state().Generations; g[len(g)-1].MigratedFrom != "iptables-nft" || g[0].MigratedFrom != "" {
		t.Errorf("generations record migrated_from %q then %q, want \"\" then iptables-nft", g[0].MigratedFrom, g[len(g)-1].MigratedFrom)
	}
	// Auto now finds the rules in nftables, with nothing to change.
	if out := h.must(ExitOK, "plan"); !strings.Contains(out, "No changes.") {
		t.Errorf("plan after the migration:\n%s", out)
	}

	out = h.must(ExitOK, "apply", "-auto-approve", "--backend", "iptables-nft")
	if !strings.Contains(out, "Removed svcnat's objects from the nftables backend (") {
		t.Errorf("apply --backend iptables-nft:\n%s", out)
	}
	if h.rules() != iptBefore {
		t.Errorf("the iptables rules after migrating back:\n%s\nwant\n%s", h.rules(), iptBefore)
	}
	if rs, _ := nft.Read(backend.IPv4, nil); len(rs.Tables) > 0 {
		t.Errorf("nftables still holds tables:\n%s", rs.Text())
	}
}

// TestApplyBackendMigratesJSON: the document holds both plans and the
// removal's summary, beside the usual fields.
func TestApplyBackendMigratesJSON(t *testing.T) {
	h := newFakeHost(t)
	twoBackends(h)
	h.must(ExitOK, "apply", "-auto-approve")
	doc, res := h.result(ExitOK, "apply", "-auto-approve", "--backend", "nftables")
	if p, _ := doc["plan"].(map[string]any); p == nil || p["backend"] != "nftables" {
		t.Errorf("plan %v, want the nftables plan", doc["plan"])
	}
	if p, _ := doc["migrated_from_plan"].(map[string]any); p == nil || p["backend"] != "iptables-nft" {
		t.Errorf("migrated_from_plan %v, want the iptables-nft removal", doc["migrated_from_plan"])
	}
	expect(t, "apply --backend nftables", res, map[string]any{"operation": "apply", "outcome": "applied", "generation": 2})
	m, _ := res["migrated_from"].(map[string]any)
	if m == nil || m["backend"] != "iptables-nft" || m["removed"] != true || m["lines_written"].(float64) == 0 {
		t.Fatalf("migrated_from %v", res["migrated_from"])
	}
	if s, _ := m["summary"].(map[string]any); s == nil || s["remove"].(float64) == 0 {
		t.Errorf("migrated_from summary %v", m["summary"])
	}
	var hist struct {
		Generations []struct {
			MigratedFrom *string `json:"migrated_from"`
		} `json:"generations"`
	}
	if err := json.Unmarshal([]byte(h.must(ExitOK, "history", "--json")), &hist); err != nil || len(hist.Generations) != 2 ||
		hist.Generations[0].MigratedFrom != nil || hist.Generations[1].MigratedFrom == nil || *hist.Generations[1].MigratedFrom != "iptables-nft" {
		t.Errorf("history --json after the migration (%v): want migrated_from null then \"iptables-nft\"", err)
	}
	// Any other run's document has no migrated_from.
	_, res = h.result(ExitOK, "apply", "-auto-approve")
	if _, ok := res["migrated_from"]; ok {
		t.Errorf("an apply that migrates nothing says migrated_from: %v", res)
	}
}

// TestPlanPreviewsMigration: plan --backend nftables on a host whose
// rules are in iptables shows the two plans apply --backend nftables
// shows, changes nothing, exits 2 with -detailed-exitcode, and with
// --json nests the removal as migrated_from_plan.
func TestPlanPreviewsMigration(t *testing.T) {
	h := newFakeHost(t)
	nft := twoBackends(h)
	h.must(ExitOK, "apply", "-auto-approve")
	before := h.rules()
	out := h.must(ExitChanges, "plan", "-detailed-exitcode", "--backend", "nftables")
	for _, want := range []string{
		"svcnat will perform the following actions (backend nftables, table svcnat):",
		"Then svcnat will remove its rules from the backend it moves them from (backend iptables-nft, chains SVCNAT-*):",
		"  - chain SVCNAT-SERVICES",
		"svcnat apply --backend nftables performs both in one step",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan --backend nftables: no %q in\n%s", want, out)
		}
	}
	if h.rules() != before || nftRules(t, nft) != "" || nft.Runs() != 0 {
		t.Fatal("plan --backend nftables changed the rules")
	}
	doc := map[string]any{}
	js := h.must(ExitOK, "plan", "--json", "--backend", "nftables")
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, js)
	}
	if doc["backend"] != "nftables" || doc["changed"] != true {
		t.Errorf("plan --json: backend %v changed %v, want nftables's plan of changes", doc["backend"], doc["changed"])
	}
	if r, _ := doc["migrated_from_plan"].(map[string]any); r == nil || r["backend"] != "iptables-nft" || r["applyable"] != true {
		t.Errorf("migrated_from_plan %v, want the iptables-nft removal", doc["migrated_from_plan"])
	}
	// What apply then shows and asks about is the preview, line for line.
	h.terminal, h.stdin = true, strings.NewReader("no\n")
	applied, _, _ := h.run("apply", "--backend", "nftables")
	preview, _, _ := strings.Cut(out, "\nsvcnat apply --backend nftables performs both")
	if !strings.HasPrefix(applied, preview) {
		t.Errorf("apply --backend nftables showed\n%s\nwhere plan previewed\n%s", applied, preview)
	}
	// A removal apply would refuse (a chain of the prefix this state
	// directory never recorded) refuses the whole move: both plans say
	// so, and plan exits 1.
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n:SVCNAT-SVC-STRANGER0000000 - [0:0]\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	out, errs, code := h.run("plan", "--json", "--backend", "nftables")
	doc = map[string]any{}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != ExitError || doc["applyable"] != false {
		t.Errorf("plan --json with a removal apply refuses: exit %d, applyable %v (%v)\n%s%s", code, doc["applyable"], err, out, errs)
	}
	if r, _ := doc["migrated_from_plan"].(map[string]any); r == nil || r["applyable"] != false {
		t.Errorf("migrated_from_plan %v, want the refused removal", doc["migrated_from_plan"])
	}
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n-X SVCNAT-SVC-STRANGER0000000\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	// Without a move, plan's document has no migrated_from_plan.
	if js := h.must(ExitOK, "plan", "--json"); strings.Contains(js, "migrated_from_plan") {
		t.Errorf("a plan that moves nothing says migrated_from_plan:\n%s", js)
	}
}

// TestOnlyApplyMigrates: every other command (and a saved plan, made or
// applied) keeps refusing the backend without svcnat's rules, and nothing
// changes; --confirm-timeout is refused with a migration.
func TestOnlyApplyMigrates(t *testing.T) {
	h := newFakeHost(t)
	nft := twoBackends(h)
	h.must(ExitOK, "apply", "-auto-approve")
	h.must(ExitOK, "plan", "-out", h.config+"/x.plan")
	before := h.rules()
	for _, c := range []struct {
		args []string
		hint string
	}{
		{[]string{"plan", "-out", h.config + "/y.plan", "--backend", "nftables"}, "a saved plan is for one backend and cannot move svcnat's rules: drop -out to preview the move"},
		{[]string{"plan", "-destroy", "--backend", "nftables"}, "svcnat plan --backend nftables previews moving them, and svcnat apply --backend nftables moves them in one step"},
		{[]string{"destroy", "-auto-approve", "--backend", "nftables"}, "use --backend auto, or destroy the rules in the other backend first"},
		{[]string{"show", "--backend", "nftables"}, "use --backend auto"},
		{[]string{"rollback", "-auto-approve", "--backend", "nftables"}, "use --backend auto"},
		{[]string{"apply", "--backend", "nftables", h.config + "/x.plan"}, "a saved plan is for one backend and cannot move svcnat's rules"},
		{[]string{"apply", "-auto-approve", "--backend", "nftables", "--confirm-timeout", "1m"}, "migrate without --confirm-timeout"},
	} {
		h.opened = nil
		out, errs, code := h.run(c.args...)
		if code != ExitError || !strings.Contains(errs, "svcnat: hint: ") || !strings.Contains(errs, c.hint) {
			t.Errorf("svcnat %s: exit %d, want 1 with the hint %q\n%s%s", strings.Join(c.args, " "), code, c.hint, out, errs)
		}
		// Only apply and plan from the configuration open a host to
		// migrate (plan to preview it), and neither with a plan file.
		for _, o := range h.opened {
			if o.Migrate != (c.args[0] == "apply" && !strings.HasSuffix(c.args[len(c.args)-1], ".plan")) || c.args[0] == "plan" && o.Migrate {
				t.Errorf("svcnat %s opened the host with Migrate %v", strings.Join(c.args, " "), o.Migrate)
			}
		}
	}
	if h.rules() != before || nftRules(t, nft) != "" || nft.Runs() != 0 {
		t.Fatal("a refused command changed the rules")
	}
}

// TestMigrationSplitBrainUnchanged: with rules in both backends (a failed
// removal leaves that) auto is refused, and an explicit backend works on
// that backend only, as before migrations: destroy --backend removes
// the old set and keeps the record of the new.
func TestMigrationSplitBrainUnchanged(t *testing.T) {
	h := newFakeHost(t)
	nft := twoBackends(h)
	h.must(ExitOK, "apply", "-auto-approve")
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-X SVCNAT-") })
	out, errs, code := h.run("apply", "-auto-approve", "--backend", "nftables")
	if code != ExitError || !strings.Contains(errs, "both sets are live") ||
		!strings.Contains(errs, "svcnat: hint: run svcnat destroy --backend iptables-nft to remove the old set") {
		t.Fatalf("failed removal: exit %d\n%s%s", code, out, errs)
	}
	h.fake.FailWhen(nil)
	if !strings.Contains(h.rules(), "SVCNAT-SERVICES") || nftRules(t, nft) == "" {
		t.Fatal("a failed removal must leave both sets")
	}
	for _, cmd := range [][]string{{"plan"}, {"apply", "-auto-approve"}, {"destroy", "-auto-approve"}} {
		if _, errs, code := h.run(cmd...); code != ExitError || !strings.Contains(errs, "svcnat: hint: remove one set") {
			t.Errorf("svcnat %s with rules in both: exit %d\n%s", strings.Join(cmd, " "), code, errs)
		}
	}
	out = h.must(ExitOK, "destroy", "-auto-approve", "--backend", "iptables-nft")
	if strings.Contains(h.rules(), "SVCNAT") || h.state().Backend != kernel.NFTables {
		t.Fatalf("destroy --backend iptables-nft did not finish the migration:\n%s\n%s", out, h.rules())
	}
	if out := h.must(ExitOK, "plan"); !strings.Contains(out, "No changes.") {
		t.Errorf("plan after finishing:\n%s", out)
	}
}
