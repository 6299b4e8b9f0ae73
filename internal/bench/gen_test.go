package bench

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
)

// The generated configuration is valid, deterministic, and has the mix
// the benchmarks rely on.
func TestGeneratedConfigIsValid(t *testing.T) {
	s := Spec{Services: 450, Endpoints: 3}
	files := Files(s)
	if len(files) != 3 {
		t.Fatalf("%d files, want 3 (200 services each)", len(files))
	}
	srcs := map[string][]byte{}
	for n, b := range files {
		srcs[n] = []byte(b)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	nodePorts, local, affinity := 0, 0, 0
	for _, svc := range cfg.Services {
		if len(svc.Endpoints) != 3 {
			t.Fatalf("%s has %d endpoints", svc.Name, len(svc.Endpoints))
		}
		if svc.Type == config.TypeNodePort {
			nodePorts++
		}
		if svc.ExternalTrafficPolicy == config.PolicyLocal {
			local++
		}
		if svc.SessionAffinity == config.AffinityClientIP {
			affinity++
		}
	}
	if len(cfg.Services) != 450 || nodePorts != 90 || local != 18 || affinity == 0 {
		t.Fatalf("%d services, %d node ports, %d local, %d affinity", len(cfg.Services), nodePorts, local, affinity)
	}
	name, body := Change(s, 201)
	if name != "ns001.hcl" || strings.Count(body, "endpoint {") != strings.Count(files[name], "endpoint {")+1 {
		t.Fatalf("Change(201) edits %s wrongly", name)
	}
	again := Files(s)
	for n := range files {
		if files[n] != again[n] {
			t.Fatal("generation is not deterministic")
		}
	}
}

// make bench's N and E reach the Go benchmarks; unset, the default holds.
func TestSpecFromEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	if s, err := specFromEnv(get); err != nil || s != (Spec{Services: 10000, Endpoints: 5}) {
		t.Errorf("unset: %+v, %v", s, err)
	}
	env[EnvServices], env[EnvEndpoints] = "1000", "3"
	if s, err := specFromEnv(get); err != nil || s != (Spec{Services: 1000, Endpoints: 3}) {
		t.Errorf("N=1000 E=3: %+v, %v", s, err)
	}
	env[EnvServices] = "10k"
	if _, err := specFromEnv(get); err == nil || err.Error() != `SVCNAT_BENCH_N="10k": want a positive number` {
		t.Errorf("N=10k: %v", err)
	}
	env[EnvServices], env[EnvEndpoints] = "", "0"
	if _, err := specFromEnv(get); err == nil {
		t.Error("E=0 accepted")
	}
}
