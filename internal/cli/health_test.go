package cli

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/planner"
)

// noPID is a process ID no process has: above the kernel's largest
// pid_max (PID_MAX_LIMIT, 2^22).
const noPID = 1<<22 + 1

// nginxView is what a live reconcile (this process) found of the
// examples' nginx at written: 10.64.3.2 down for 45s, the others up for
// two hours.
func nginxView(written time.Time) *health.View {
	key := func(a string) health.Key {
		return health.Key{Service: "default/nginx", Endpoint: netip.MustParseAddr(a)}
	}
	up := health.Status{Up: true, Checked: true, Since: written.Add(-(2*time.Hour + 5*time.Minute + 10*time.Second)), Consecutive: 412, LastCheck: written}
	v := &health.View{WrittenAt: written, StaleAfter: time.Minute, PID: os.Getpid(), Endpoints: map[health.Key]health.Status{}}
	for _, a := range []string{"10.64.1.2", "10.64.2.2"} {
		up.Target = a + ":80"
		v.Endpoints[key(a)] = up
	}
	v.Endpoints[key("10.64.3.2")] = health.Status{Up: false, Checked: true, Since: written.Add(-45 * time.Second), Consecutive: 3,
		LastCheck: written, LastError: "dial tcp 10.64.3.2:80: connect: connection refused", Target: "10.64.3.2:80"}
	return v
}

// healthHost is the README's walkthrough host with examples/ applied
// beside a live reconcile whose checks found 10.64.3.2 down; nginx's
// health_check is set by hand (its decoding is config's). It returns the
// configuration and an engine on the host, whose plans read the view.
func healthHost(t *testing.T) (*fakeHost, *config.Config, *engine.Engine) {
	t.Helper()
	h := &fakeHost{t: t, fake: iptables.NewFake(), stateDir: t.TempDir(), config: t.TempDir()}
	for _, f := range []string{"settings.hcl", "nginx.hcl", "dns.hcl"} {
		b, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, h.config, f, string(b))
	}
	cfg, diags := config.Load(h.config)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, s := range cfg.Services {
		if s.Name == "default/nginx" {
			s.HealthCheck = &config.HealthCheck{Protocol: config.CheckTCP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
		}
	}
	if err := health.Write(h.stateDir, nginxView(time.Now())); err != nil {
		t.Fatal(err)
	}
	e := &engine.Engine{Host: engine.Host{Kernel: h.fake}, StateDir: h.stateDir}
	if _, err := e.Apply(context.Background(), cfg, "n1"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h.rules(), "10.64.3.2") {
		t.Fatal("an apply beside the view put the endpoint it found down in the rules")
	}
	return h, cfg, e
}

// readmeVaries is what differs from run to run in the README's health
// examples: durations, process IDs, times and the state directory.
var readmeVaries = regexp.MustCompile(`(\d+h)?(\d+m)?\d+s ago|pid \d+|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|/tmp/\S+/health\.json|/var/lib/svcnat/health\.json`)

// readmeLines checks that out holds every line of the README block after
// marker that starts with one of prefixes, but for what readmeVaries
// matches, and that there are want of them.
func readmeLines(t *testing.T, marker, out string, want int, prefixes ...string) {
	t.Helper()
	norm := func(s string) string { return readmeVaries.ReplaceAllString(s, "…") }
	got := norm(out)
	checked := 0
	for _, line := range strings.Split(readmeBlock(t, marker, ""), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				checked++
				if !strings.Contains(got, norm(line)+"\n") {
					t.Errorf("svcnat prints no line %q; it printed\n%s", line, out)
				}
				break
			}
		}
	}
	if checked != want {
		t.Errorf("the README's block after %q has %d of the lines checked; want %d", marker, checked, want)
	}
}

// The README's plan and show beside reconcile's health checks are what
// they print: the plan leaves 10.64.3.2 out and says why; show lists each
// checked endpoint; a stale view is said once, and no health shown.
func TestREADMEHealthExamples(t *testing.T) {
	h, cfg, e := healthHost(t)
	p, err := e.Plan(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var plan bytes.Buffer
	if err := newPlanView(&plan, false, false).Plan(p); err != nil {
		t.Fatal(err)
	}
	readmeLines(t, "absent (ten by name at most):\n", "\n"+plan.String(), 2, "No changes.", "Health: ")

	show := h.must(ExitOK, "show")
	readmeLines(t, "the last one's error:\n", show, 5, "SVCNAT owns ", "health checks (", "  default/nginx 10.64.")

	v := nginxView(time.Now().Add(-25 * time.Minute))
	v.PID = noPID
	if err := health.Write(h.stateDir, v); err != nil {
		t.Fatal(err)
	}
	show = h.must(ExitOK, "show")
	readmeLines(t, "instead of showing health:\n", show, 1, "The health view in ")
	if strings.Contains(show, "health checks (") || strings.Contains(show, "10.64.3.2 down") {
		t.Errorf("show beside a stale view shows health:\n%s", show)
	}
}

// plan --json carries every endpoint the plan left out, with what the
// checks found; a saved plan keeps it, for show PLANFILE.
func TestPlanJSONHealth(t *testing.T) {
	h, cfg, e := healthHost(t)
	p, err := e.Plan(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := newPlanView(&out, true, false).Plan(p); err != nil {
		t.Fatal(err)
	}
	doc := planDoc(t, out.String())
	hv, _ := doc["health"].(map[string]any)
	down, _ := hv["down"].([]any)
	if hv == nil || hv["file"] != filepath.Join(h.stateDir, health.FileName) || hv["pid"] != float64(os.Getpid()) || hv["error"] != nil || len(down) != 1 {
		t.Fatalf("plan --json health: %v", doc["health"])
	}
	expect(t, "plan --json health.down[0]", down[0].(map[string]any), map[string]any{"service": "default/nginx", "endpoint": "10.64.3.2",
		"target": "10.64.3.2:80", "consecutive": 3, "last_error": "dial tcp 10.64.3.2:80: connect: connection refused"})
	since, err := time.Parse(time.RFC3339, down[0].(map[string]any)["since"].(string))
	if err != nil || !since.Equal(p.Health.Down[0].Since) {
		t.Errorf("plan --json since: %v %v", since, err)
	}
	// The README's example has the members plan --json's health has.
	example := readmeJSON(t, "### `plan --json`").(map[string]any)
	sameShape(t, "plan --json health", example["health"], doc["health"])

	// A saved plan, shown, says it too.
	file := filepath.Join(t.TempDir(), "nginx.plan")
	if err := engine.SavePlan(file, p, engine.ConfigDigest(cfg)); err != nil {
		t.Fatal(err)
	}
	if shown := h.must(ExitOK, "show", file); !strings.Contains(shown, "Health: 1 endpoint left out: down by health check (svcnat reconcile, ") ||
		!strings.Contains(shown, "): default/nginx 10.64.3.2.\n") {
		t.Errorf("show PLANFILE of a plan made beside the view:\n%s", shown)
	}
}

// A plan names at most ten endpoints it left out, then how many more.
func TestPlanHealthNoteIsShort(t *testing.T) {
	p := &planner.Plan{Prefix: "SVCNAT", Backend: "iptables-nft", Health: &planner.Health{WrittenAt: time.Now(), ReadAt: time.Now()}}
	for i := range 12 {
		p.Health.Down = append(p.Health.Down, planner.Down{Service: "default/web", Endpoint: netip.AddrFrom4([4]byte{10, 64, 1, byte(i + 1)})})
	}
	var out bytes.Buffer
	if err := newPlanView(&out, false, false).Plan(p); err != nil {
		t.Fatal(err)
	}
	if want := "Health: 12 endpoints left out: down by health check (svcnat reconcile, 0s ago): default/web 10.64.1.1, "; !strings.Contains(out.String(), want) ||
		!strings.Contains(out.String(), "default/web 10.64.1.10, and 2 more.\n") || strings.Contains(out.String(), "10.64.1.11") {
		t.Errorf("plan of 12 endpoints down:\n%s", out.String())
	}
}

// A health.json that cannot be read blocks no plan: the plan renders the
// configuration's conditions and says which view it ignored.
func TestPlanIgnoresAnUnreadableHealthView(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	file := writeFile(t, h.stateDir, health.FileName, "{not json")
	out := h.must(ExitOK, "plan", "--detailed-exitcode")
	if !strings.Contains(out, "No changes.") || !strings.Contains(out, "Health: ignored svcnat reconcile's health view (reading "+file+": invalid character") ||
		!strings.Contains(out, "this plan renders the configuration's conditions alone.\n") {
		t.Fatalf("plan beside a corrupt view:\n%s", out)
	}
	doc := planDoc(t, h.must(ExitOK, "--json", "plan"))
	if hv, _ := doc["health"].(map[string]any); hv == nil || hv["error"] == nil || len(hv["down"].([]any)) != 0 {
		t.Fatalf("plan --json beside a corrupt view: health %v", doc["health"])
	}
	out = h.must(ExitOK, "show")
	if !strings.Contains(out, "The health view of svcnat reconcile cannot be read (reading "+file) {
		t.Fatalf("show beside a corrupt view:\n%s", out)
	}
}

// show --json lists every checked endpoint of a fresh view, up or down,
// with the members the README's example shows; a stale view none, and
// why; without a view, health is null and show says nothing of it.
func TestShowJSONHealth(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	if out := h.must(ExitOK, "show"); strings.Contains(out, "health view") || strings.Contains(out, "health checks") {
		t.Errorf("show without a view speaks of health:\n%s", out)
	}
	if doc := planDoc(t, h.must(ExitOK, "--json", "show")); doc["health"] != nil {
		t.Errorf("show --json without a view: health %v", doc["health"])
	}

	now := time.Now()
	if err := health.Write(h.stateDir, nginxView(now)); err != nil {
		t.Fatal(err)
	}
	doc := planDoc(t, h.must(ExitOK, "--json", "show"))
	hv, _ := doc["health"].(map[string]any)
	eps, _ := hv["endpoints"].([]any)
	if hv == nil || hv["stale"] != false || hv["stale_reason"] != nil || hv["error"] != nil || hv["pid"] != float64(os.Getpid()) || len(eps) != 3 {
		t.Fatalf("show --json health: %v", doc["health"])
	}
	down := eps[2].(map[string]any)
	expect(t, "show --json health.endpoints[2]", down, map[string]any{"service": "default/nginx", "endpoint": "10.64.3.2", "up": false,
		"checked": true, "consecutive": 3, "last_error": "dial tcp 10.64.3.2:80: connect: connection refused", "target": "10.64.3.2:80",
		"since": now.Add(-45 * time.Second).UTC().Format(time.RFC3339Nano)})
	if s := down["since_seconds"].(float64); s < 45 || s > 100 {
		t.Errorf("show --json since_seconds %v, want 45 and a little", s)
	}
	if up := eps[0].(map[string]any); up["endpoint"] != "10.64.1.2" || up["up"] != true || up["last_error"] != "" {
		t.Errorf("show --json health.endpoints[0]: %v", up)
	}
	example := readmeJSON(t, "### `show --json`").(map[string]any)
	got, open := jsonPaths(map[string]any{"health": doc["health"]})
	want, _ := jsonPaths(map[string]any{"health": example["health"]})
	for p := range got {
		if !want[p] {
			t.Errorf("the README's show --json example lacks %s", p)
		}
	}
	for p := range want {
		if !got[p] && !under(p, open) {
			t.Errorf("show --json has no %s, which the README's example shows", p)
		}
	}

	for reason, v := range map[string]*health.View{
		"writer_gone": func() *health.View { v := nginxView(now); v.PID = noPID; return v }(),
		"too_old":     nginxView(now.Add(-2 * time.Minute)),
	} {
		if err := health.Write(h.stateDir, v); err != nil {
			t.Fatal(err)
		}
		doc := planDoc(t, h.must(ExitOK, "--json", "show"))
		hv, _ := doc["health"].(map[string]any)
		if hv == nil || hv["stale"] != true || hv["stale_reason"] != reason || len(hv["endpoints"].([]any)) != 0 {
			t.Errorf("show --json beside a stale view (%s): health %v", reason, doc["health"])
		}
		out := h.must(ExitOK, "show")
		if n := strings.Count(out, "is stale"); n != 1 || strings.Contains(out, "10.64.3.2 down") {
			t.Errorf("show beside a stale view (%s) says it %d times:\n%s", reason, n, out)
		}
	}
}

// show prints each checked endpoint as what the checks found of it; an
// error that holds control characters (what an HTTP endpoint answered)
// is quoted, not sent to the terminal.
func TestShowEndpointHealthWords(t *testing.T) {
	at := time.Now()
	for _, c := range []struct {
		s    health.Status
		want string
	}{
		{health.Status{Up: true}, "up (no verdict yet), not checked yet"},
		{health.Status{Up: true, Consecutive: 1, LastCheck: at}, "up (no verdict yet), 1 pass"},
		{health.Status{Up: true, Checked: true, Since: at.Add(-time.Minute), Consecutive: 2, LastCheck: at, LastError: "timeout"},
			"up since 1m0s ago, 2 failures in a row: timeout"},
		{health.Status{Up: false, Checked: true, Since: at.Add(-time.Minute), Consecutive: 1, LastCheck: at, LastError: "status 500 \x1b[2Jgone"},
			`down since 1m0s ago, 1 failure in a row: "status 500 \x1b[2Jgone"`},
	} {
		v := &health.View{WrittenAt: at, StaleAfter: time.Minute, PID: os.Getpid(),
			Endpoints: map[health.Key]health.Status{{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.2")}: c.s}}
		var out bytes.Buffer
		writeShowHealth(&out, newStyle(false), newJSONShowHealth(&engine.HealthStatus{View: v, ReadAt: at}))
		if want := "  default/web 10.64.1.2 " + c.want + "\n"; !strings.HasSuffix(out.String(), want) {
			t.Errorf("show of %+v:\n%s\nwant the line\n%s", c.s, out.String(), want)
		}
	}
}

// nginxChecked is nginxTwo with a health_check.
var nginxChecked = strings.Replace(nginxTwo, "  endpoint {\n    address = \"10.64.1.2\"", "  health_check {\n    protocol = \"tcp\"\n  }\n  endpoint {\n    address = \"10.64.1.2\"", 1)

// Through the command line: beside a live reconcile whose checks found
// 10.64.1.3 down, apply leaves it out, and plan shows no drift and says
// why. (It skips until the configuration decodes health_check blocks.)
func TestPlanAndApplyBesideReconcileHealthChecks(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.config, "nginx.hcl", nginxChecked)
	if _, errs, code := h.run("validate"); code != ExitOK && strings.Contains(errs, "Unsupported block type") {
		t.Skip("the configuration does not decode health_check blocks yet")
	}
	v := &health.View{WrittenAt: time.Now(), StaleAfter: time.Minute, PID: os.Getpid(), Endpoints: map[health.Key]health.Status{
		{Service: "default/nginx", Endpoint: netip.MustParseAddr("10.64.1.2")}: {Up: true, Checked: true, Since: time.Now()},
		{Service: "default/nginx", Endpoint: netip.MustParseAddr("10.64.1.3")}: {Up: false, Checked: true, Since: time.Now(), Consecutive: 3, LastError: "connection refused"},
	}}
	if err := health.Write(h.stateDir, v); err != nil {
		t.Fatal(err)
	}
	out := h.must(ExitOK, "apply", "-auto-approve")
	if !strings.Contains(out, "Health: 1 endpoint left out: down by health check (svcnat reconcile, ") || strings.Contains(h.rules(), "10.64.1.3") ||
		!strings.Contains(h.rules(), "10.64.1.2") {
		t.Fatalf("apply beside the view:\n%s\n%s", out, h.rules())
	}
	out = h.must(ExitOK, "plan", "--detailed-exitcode")
	if !strings.Contains(out, "No changes.") || !strings.Contains(out, "): default/nginx 10.64.1.3.\n") {
		t.Fatalf("plan beside the view:\n%s", out)
	}
	out = h.must(ExitOK, "show")
	if !strings.Contains(out, "  default/nginx 10.64.1.3 down since ") {
		t.Fatalf("show beside the view:\n%s", out)
	}
	// Once reconcile is gone, the file's conditions decide again.
	v.PID = noPID
	if err := health.Write(h.stateDir, v); err != nil {
		t.Fatal(err)
	}
	if out, _, code := h.run("plan", "--detailed-exitcode"); code != ExitChanges || strings.Contains(out, "Health:") || !strings.Contains(out, "endpoint 10.64.1.3:80 added") {
		t.Fatalf("plan beside a stale view: exit %d\n%s", code, out)
	}
}
