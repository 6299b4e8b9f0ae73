package health

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
)

func testConfig() *config.Config {
	ep := func(a string, ready, serving, terminating bool) *config.Endpoint {
		return &config.Endpoint{Address: netip.MustParseAddr(a), Ready: ready, Serving: serving, Terminating: terminating}
	}
	return &config.Config{Services: []*config.Service{
		{Name: "default/checked", HealthCheck: &config.HealthCheck{Protocol: config.CheckTCP},
			Endpoints: []*config.Endpoint{ep("10.64.1.2", true, true, false), ep("10.64.1.3", false, true, true), ep("10.64.1.4", true, true, false)}},
		{Name: "default/unchecked", Endpoints: []*config.Endpoint{ep("10.64.1.2", true, true, false)}},
	}}
}

// Overlay takes out what the view has down, in checked services only,
// keeps the terminating condition, leaves the configuration it was given
// alone and shares what it does not change.
func TestOverlay(t *testing.T) {
	cfg := testConfig()
	if Overlay(cfg, nil) != cfg {
		t.Fatal("Overlay without a view copied the configuration")
	}
	all := &View{Endpoints: map[Key]Status{{"default/checked", netip.MustParseAddr("10.64.1.2")}: {Up: true}}}
	if Overlay(cfg, all) != cfg {
		t.Fatal("Overlay with every endpoint up copied the configuration")
	}
	v := &View{Endpoints: map[Key]Status{
		{"default/checked", netip.MustParseAddr("10.64.1.3")}:   {Up: false},
		{"default/checked", netip.MustParseAddr("10.64.1.4")}:   {Up: false},
		{"default/unchecked", netip.MustParseAddr("10.64.1.2")}: {Up: false},
	}}
	out := Overlay(cfg, v)
	got := out.Services[0].Endpoints
	if !got[0].Ready || !got[0].Serving {
		t.Error("an endpoint that is up was taken out")
	}
	if got[1].Ready || got[1].Serving || !got[1].Terminating {
		t.Errorf("a terminating endpoint that is down: %+v, want not ready, not serving, terminating", *got[1])
	}
	if got[2].Ready || got[2].Serving {
		t.Errorf("an endpoint that is down: %+v", *got[2])
	}
	if !out.Services[1].Endpoints[0].Ready || out.Services[1] != cfg.Services[1] {
		t.Error("a service without a health_check was changed")
	}
	if e := cfg.Services[0].Endpoints[2]; !e.Ready || !e.Serving {
		t.Error("Overlay changed the configuration it was given")
	}
}

// decode reads the view in dir as the engine's reader decodes it, stale
// or not; nil when it is absent.
func decode(t *testing.T, dir string) (*View, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return Decode(data, filepath.Join(dir, FileName))
}

// read is decode, nil also when the view is stale at now.
func read(t *testing.T, dir string, now time.Time) (*View, error) {
	t.Helper()
	v, err := decode(t, dir)
	if err != nil || v.Stale(now) {
		return nil, err
	}
	return v, nil
}

// A written view reads back; it is stale when old or when its writer is
// gone.
func TestViewFile(t *testing.T) {
	dir := t.TempDir()
	if v, err := read(t, dir, time.Now()); v != nil || err != nil {
		t.Fatalf("no file: %v %v", v, err)
	}
	now := time.Now().Truncate(time.Second)
	k := Key{"default/web", netip.MustParseAddr("10.64.1.2")}
	w := &View{WrittenAt: now, StaleAfter: time.Minute, PID: os.Getpid(), ConfigDigest: "sha256:x",
		Endpoints: map[Key]Status{k: {Up: false, Checked: true, Since: now, Consecutive: 3, LastError: "refused", Target: "10.64.1.2:80"}}}
	if err := Write(dir, w); err != nil {
		t.Fatal(err)
	}
	v, err := read(t, dir, now.Add(time.Second))
	if err != nil || v == nil {
		t.Fatalf("Read: %v %v", v, err)
	}
	if !v.Down("default/web", k.Endpoint) || v.Endpoints[k].LastError != "refused" || !v.WrittenAt.Equal(now) || v.StaleAfter != time.Minute {
		t.Fatalf("read back %+v", v)
	}
	if v, _ := read(t, dir, now.Add(2*time.Minute)); v != nil {
		t.Fatal("a view older than stale_after was not stale")
	}
	w.PID = 1 << 30 // no such process
	if err := Write(dir, w); err != nil {
		t.Fatal(err)
	}
	if v, _ := read(t, dir, now); v != nil {
		t.Fatal("a view whose writer is gone was not stale")
	}
	if v, err := decode(t, dir); err != nil || v == nil || !v.WriterGone() {
		t.Fatalf("a stale view read as it is: %v %v", v, err)
	}
	if err := os.WriteFile(dir+"/"+FileName, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, dir, now); err == nil {
		t.Fatal("a corrupt view read without an error")
	}
}

// A verdict is about one check: once the configuration checks the
// endpoint otherwise (here another port), it takes the endpoint out no
// more, until the new check's own verdict.
func TestOverlayOtherCheck(t *testing.T) {
	hc := &config.HealthCheck{Protocol: config.CheckTCP, Port: 8080}
	e := &config.Endpoint{Address: netip.MustParseAddr("10.64.1.2"), Ready: true, Serving: true}
	cfg := &config.Config{Services: []*config.Service{{Name: "default/web", HealthCheck: hc, Endpoints: []*config.Endpoint{e}}}}
	k := Key{"default/web", e.Address}
	v := &View{Endpoints: map[Key]Status{k: {Up: false, Check: CheckID(hc, "10.64.1.2:8080")}}}
	if out := Overlay(cfg, v); out.Services[0].Endpoints[0].Ready {
		t.Fatal("a verdict of the check the configuration makes did not take the endpoint out")
	}
	moved := *hc
	moved.Port = 9090
	cfg.Services[0].HealthCheck = &moved
	if out := Overlay(cfg, v); !out.Services[0].Endpoints[0].Ready {
		t.Fatal("a verdict of another check took the endpoint out")
	}
}
