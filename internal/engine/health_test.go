package engine

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/planner"
)

// checkedWeb is web with a health_check, built by hand (the block's
// decoding is config's).
func checkedWeb(t *testing.T) *config.Config {
	t.Helper()
	cfg := parse(t, web)
	cfg.Services[0].HealthCheck = &config.HealthCheck{Protocol: config.CheckTCP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	return cfg
}

// noPID is a process ID no process has: above the kernel's largest
// pid_max (PID_MAX_LIMIT, 2^22).
const noPID = 1<<22 + 1

// webDown is a view of checkedWeb's by a live reconcile (this process),
// written at, with 10.64.1.3 down.
func webDown(at time.Time) *health.View {
	since := at.Add(-45 * time.Second)
	return &health.View{WrittenAt: at, StaleAfter: time.Minute, PID: os.Getpid(), Endpoints: map[health.Key]health.Status{
		{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.2")}: {Up: true, Checked: true, Since: since, Consecutive: 9, LastCheck: at, Target: "10.64.1.2:80"},
		{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.3")}: {Up: false, Checked: true, Since: since, Consecutive: 3, LastCheck: at,
			LastError: "dial tcp 10.64.1.3:80: connect: connection refused", Target: "10.64.1.3:80"},
	}}
}

func writeView(t *testing.T, stateDir string, v *health.View) {
	t.Helper()
	if err := health.Write(stateDir, v); err != nil {
		t.Fatal(err)
	}
}

// withoutEndpoint is cfg with the endpoint at addr marked not ready and
// not serving in the file itself: the rules a reconcile that found it
// down keeps in force.
func withoutEndpoint(t *testing.T, cfg *config.Config, addr string) *config.Config {
	t.Helper()
	out := *cfg
	s := *cfg.Services[0]
	s.Endpoints = nil
	for _, e := range cfg.Services[0].Endpoints {
		c := *e
		if c.Address.String() == addr {
			c.Ready, c.Serving = false, false
		}
		s.Endpoints = append(s.Endpoints, &c)
	}
	out.Services = []*config.Service{&s}
	return &out
}

// Beside a live reconcile whose checks found an endpoint down, plan
// renders what reconcile renders: no drift for the endpoint the rules
// leave out, and a note naming it.
func TestPlanBesideAFreshHealthViewLeavesTheDownEndpointOut(t *testing.T) {
	h := newHost(t)
	cfg := checkedWeb(t)
	// The rules reconcile keeps in force, applied without a view.
	h.mustApply(t, withoutEndpoint(t, cfg, "10.64.1.3"))
	if strings.Contains(h.text(t), "10.64.1.3") {
		t.Fatal("the rules without 10.64.1.3 name it")
	}
	now := time.Now()
	writeView(t, h.e.StateDir, webDown(now))
	p, err := h.e.Plan(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Fatalf("plan beside the view: %+v", p.Summary())
	}
	hv := p.Health
	if hv == nil || len(hv.Down) != 1 || hv.Ignored != "" || hv.PID != os.Getpid() || hv.File != filepath.Join(h.e.StateDir, health.FileName) {
		t.Fatalf("plan's health: %+v", hv)
	}
	if d := hv.Down[0]; d.Service != "default/web" || d.Endpoint.String() != "10.64.1.3" || d.Consecutive != 3 ||
		!strings.Contains(d.LastError, "connection refused") || d.Target != "10.64.1.3:80" || !d.Since.Equal(now.Add(-45*time.Second)) {
		t.Fatalf("the endpoint left out: %+v", d)
	}

	// An apply beside the view commits nothing, and apply by hand after
	// an edit keeps the endpoint out; the record keeps the digest of the
	// configuration itself.
	if res := h.mustApply(t, cfg); res.Applied {
		t.Fatalf("apply beside the view changed the rules: %+v", res.Plan.Summary())
	}
	two := parse(t, strings.Replace(web, "10.32.0.10", "10.32.0.20", 1))
	two.Services[0].HealthCheck = cfg.Services[0].HealthCheck
	if res := h.mustApply(t, two); !res.Applied || res.Plan.Health == nil || len(res.Plan.Health.Down) != 1 {
		t.Fatalf("apply of an edit beside the view: %+v", res)
	}
	if strings.Contains(h.text(t), "10.64.1.3") {
		t.Fatal("an apply beside the view put 10.64.1.3 back")
	}
	if st := h.state(t); st.ConfigDigest != ConfigDigest(two) {
		t.Fatalf("recorded digest %s, the configuration's %s", st.ConfigDigest, ConfigDigest(two))
	}

	// Without the view the file's conditions decide: the endpoint is back.
	if err := os.Remove(filepath.Join(h.e.StateDir, health.FileName)); err != nil {
		t.Fatal(err)
	}
	if p, err := h.e.Plan(two, "n1"); err != nil || p.Empty() || p.Health != nil {
		t.Fatalf("plan without the view: %v, %+v, health %+v", err, p.Summary(), p.Health)
	}
}

// A view that no longer speaks for a live reconcile is ignored: too old,
// or written by a process that is gone.
func TestPlanIgnoresAStaleHealthView(t *testing.T) {
	for name, v := range map[string]*health.View{
		"too old":     webDown(time.Now().Add(-2 * time.Minute)),
		"writer gone": func() *health.View { v := webDown(time.Now()); v.PID = noPID; return v }(),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHost(t)
			cfg := checkedWeb(t)
			h.mustApply(t, cfg)
			writeView(t, h.e.StateDir, v)
			p, err := h.e.Plan(cfg, "n1")
			if err != nil || !p.Empty() || p.Health != nil {
				t.Fatalf("plan beside a stale view: %v, %+v, health %+v", err, p.Summary(), p.Health)
			}
		})
	}
}

// A view that cannot be read blocks no apply: the plan renders the
// file's conditions and says which file it ignored, and why.
func TestPlanIgnoresACorruptHealthView(t *testing.T) {
	h := newHost(t)
	cfg := checkedWeb(t)
	h.mustApply(t, cfg)
	file := filepath.Join(h.e.StateDir, health.FileName)
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := h.e.Plan(cfg, "n1")
	if err != nil || !p.Empty() || p.Health == nil || len(p.Health.Down) != 0 || !strings.Contains(p.Health.Ignored, file) {
		t.Fatalf("plan beside a corrupt view: %v, %+v, health %+v", err, p.Summary(), p.Health)
	}
	if res, err := h.e.Apply(context.Background(), cfg, "n1"); err != nil || res.Applied {
		t.Fatalf("apply beside a corrupt view: %v", err)
	}
	// Nor is a link followed, as no file of the state directory is.
	os.Remove(file)
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere.json"), file); err != nil {
		t.Fatal(err)
	}
	if p, err := h.e.Plan(cfg, "n1"); err != nil || p.Health == nil || !strings.Contains(p.Health.Ignored, "symbolic link") {
		t.Fatalf("plan beside a linked view: %v, health %+v", err, p.Health)
	}
}

// The view takes endpoints out of checked services only, never puts in
// one the file marks not ready, and says nothing of those the file
// already leaves out.
func TestPlanHealthTakesOutOnlyCheckedReadyEndpoints(t *testing.T) {
	h := newHost(t)
	cfg := parse(t, web) // no health_check
	writeView(t, h.e.StateDir, webDown(time.Now()))
	h.mustApply(t, cfg)
	if !strings.Contains(h.text(t), "10.64.1.3") {
		t.Fatal("a view took an endpoint out of a service without a health_check")
	}
	if p, err := h.e.Plan(cfg, "n1"); err != nil || !p.Empty() || p.Health == nil || len(p.Health.Down) != 0 {
		t.Fatalf("plan of a service without a health_check: %v, health %+v", err, p.Health)
	}
	checked := withoutEndpoint(t, checkedWeb(t), "10.64.1.3")
	h.mustApply(t, checked)
	v := webDown(time.Now())
	v.Endpoints[health.Key{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.3")}] = health.Status{Up: true, Checked: true}
	writeView(t, h.e.StateDir, v)
	if p, err := h.e.Plan(checked, "n1"); err != nil || !p.Empty() || len(p.Health.Down) != 0 {
		t.Fatalf("an endpoint the file marks not ready, up by its checks: %v, %+v, health %+v", err, p.Summary(), p.Health)
	}
}

// The daemon's plans read no view: reconcile lays its own over the
// configuration it gives the engine, and the file can lag behind it.
func TestReconcilePlansReadNoHealthView(t *testing.T) {
	h := newHost(t)
	h.e.Origin = OriginReconcile
	cfg := checkedWeb(t)
	h.mustApply(t, cfg)
	writeView(t, h.e.StateDir, webDown(time.Now()))
	if p, err := h.e.Plan(cfg, "n1"); err != nil || !p.Empty() || p.Health != nil {
		t.Fatalf("reconcile's plan beside a view: %v, %+v, health %+v", err, p.Summary(), p.Health)
	}
}

// A saved plan keeps what the view took out, for show PLANFILE and apply
// PLANFILE to say it; the plan file's digest covers it.
func TestSavedPlanKeepsItsHealth(t *testing.T) {
	h := newHost(t)
	cfg := checkedWeb(t)
	writeView(t, h.e.StateDir, webDown(time.Now()))
	p, err := h.e.Plan(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := planner.MarshalPlan(p, ConfigDigest(cfg))
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := planner.UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		t.Fatal(err)
	}
	if back.Health == nil || len(back.Health.Down) != 1 || back.Health.Down[0] != p.Health.Down[0] || !back.Health.WrittenAt.Equal(p.Health.WrittenAt) {
		t.Fatalf("saved plan's health %+v, plan's %+v", back.Health, p.Health)
	}
}

// An apply that moves the rules to another backend renders what
// reconcile renders too: the endpoint down by health check stays out.
func TestMigrateBesideAFreshHealthView(t *testing.T) {
	h := newMigrateHost(t)
	cfg := checkedWeb(t)
	writeView(t, h.e.StateDir, webDown(time.Now()))
	h.mustApply(t, cfg)
	h.on(h.nft)
	res, err := h.e.Migrate(context.Background(), cfg, "n1", h.fake)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Health == nil || len(res.Plan.Health.Down) != 1 || !strings.Contains(owned(t, h.nft), "10.64.1.2") || strings.Contains(owned(t, h.nft), "10.64.1.3") {
		t.Fatalf("migration beside the view: health %+v\n%s", res.Plan.Health, owned(t, h.nft))
	}
	if p, err := h.e.Plan(cfg, "n1"); err != nil || !p.Empty() {
		t.Fatalf("plan after the migration: %v, %+v", err, p.Summary())
	}
}

// A plan against a saved dump reads no view: the dump is another host's
// rules, which this host's checks say nothing of.
func TestPlanAgainstADumpReadsNoHealthView(t *testing.T) {
	dump := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(dump, []byte("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := iptables.OpenDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Host: Host{Kernel: k}, StateDir: t.TempDir()}
	writeView(t, e.StateDir, webDown(time.Now()))
	p, err := e.Plan(checkedWeb(t), "n1")
	if err != nil || p.Health != nil {
		t.Fatalf("plan against a dump: %v, health %+v", err, p.Health)
	}
	if !strings.Contains(p.Desired[backend.IPv4].Text(), "10.64.1.3") {
		t.Fatal("a plan against a dump left out an endpoint this host's view finds down")
	}
}
