package config

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// clearRanges zeroes the source ranges and files so that a Config can be
// compared with a literal; ranges are checked separately.
func clearRanges(c *Config) {
	c.Files = nil
	c.Settings.DeclRange = hcl.Range{}
	for _, s := range c.Services {
		s.DeclRange = hcl.Range{}
		for _, p := range s.Ports {
			p.DeclRange = hcl.Range{}
		}
		for _, e := range s.Endpoints {
			e.DeclRange = hcl.Range{}
		}
		if s.HealthCheck != nil {
			s.HealthCheck.DeclRange = hcl.Range{}
		}
	}
}

// asJSON renders a Config for comparison: readable in a failure, and
// netip values print as addresses.
func asJSON(t *testing.T, c *Config) string {
	t.Helper()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadGood(t *testing.T) {
	cfg, diags := Load("testdata/good")
	if diags.HasErrors() {
		var b strings.Builder
		WriteDiagnostics(&b, cfg.Files, diags, false, 0)
		t.Fatal(b.String())
	}
	if len(diags) != 0 {
		t.Errorf("unexpected diagnostics: %v", diags)
	}
	if got := len(cfg.Files); got != 2 {
		t.Errorf("Files has %d entries, want 2", got)
	}
	nginx := cfg.Services[0]
	if r := nginx.DeclRange; r.Filename != filepath.Join("testdata", "good", "20-services.hcl") || r.Start.Line != 2 {
		t.Errorf("default/nginx DeclRange = %v", r)
	}
	if r := nginx.Ports[0].DeclRange; r.Start.Line != 22 {
		t.Errorf("port http DeclRange = %v, want line 22", r)
	}

	want := &Config{
		Settings: Settings{
			ChainPrefix:        "KUBE",
			Node:               "worker02",
			ClusterCIDRs:       prefixes("10.64.0.0/14", "fd00:10:64::/48"),
			MasqueradeAll:      true,
			MasqueradeBit:      15,
			NodePortAddresses:  prefixes("192.168.1.0/24"),
			NodePortRange:      PortRange{Min: 30000, Max: 30999},
			LocalhostNodePorts: true,
		},
		Services: []*Service{
			{
				Name:                     "default/nginx",
				Type:                     TypeLoadBalancer,
				ClusterIPs:               addrs("10.32.0.61", "fd00:32::61"),
				ExternalIPs:              addrs("192.168.1.50"),
				LoadBalancerIPs:          addrs("203.0.113.7", "2001:db8::7"),
				LoadBalancerSourceRanges: prefixes("198.51.100.0/24", "2001:db8:1::/48"),
				ExternalTrafficPolicy:    PolicyLocal,
				InternalTrafficPolicy:    PolicyLocal,
				HealthCheckNodePort:      30500,
				SessionAffinity:          AffinityClientIP,
				SessionAffinityTimeout:   600,
				Ports: []*Port{ // sorted by name
					{Name: "http", Protocol: ProtoTCP, Port: 80, TargetPort: 80, NodePort: 30080},
					{Name: "https", Protocol: ProtoTCP, Port: 443, TargetPort: 8443, NodePort: 30443},
					{Name: "quic", Protocol: ProtoUDP, Port: 443, TargetPort: 443},
				},
				Endpoints: []*Endpoint{ // in source order
					{Address: netip.MustParseAddr("10.64.2.4"), Node: "worker02", Ready: true, Serving: true,
						Ports: map[string]int{"http": 8080, "quic": 8443}},
					{Address: netip.MustParseAddr("fd00:10:64::5"), Node: "worker03.example", Serving: true, Terminating: true},
					{Address: netip.MustParseAddr("10.64.3.9"), Ready: true, Serving: true},
				},
				HealthCheck: &HealthCheck{Protocol: CheckHTTP, ServicePort: "https", Path: "/healthz",
					Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 2},
			},
			{
				Name:                   "dns",
				Type:                   TypeClusterIP,
				ClusterIPs:             addrs("10.32.0.10"),
				ExternalTrafficPolicy:  PolicyCluster,
				InternalTrafficPolicy:  PolicyCluster,
				SessionAffinity:        AffinityNone,
				SessionAffinityTimeout: DefaultSessionAffinityTimeout,
				Ports:                  []*Port{{Protocol: ProtoTCP, Port: 53, TargetPort: 53}},
			},
			{
				Name:                   "kube-system/sctp-echo",
				Type:                   TypeNodePort,
				ClusterIPs:             addrs("10.32.0.70"),
				ExternalTrafficPolicy:  PolicyCluster,
				InternalTrafficPolicy:  PolicyCluster,
				SessionAffinity:        AffinityNone,
				SessionAffinityTimeout: DefaultSessionAffinityTimeout,
				Ports:                  []*Port{{Protocol: ProtoSCTP, Port: 7, TargetPort: 7, NodePort: 30007}},
			},
		},
	}
	clearRanges(cfg)
	if got, want := asJSON(t, cfg), asJSON(t, want); got != want {
		t.Errorf("Load(testdata/good):\n%s\nwant:\n%s", got, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, diags := Parse(map[string][]byte{"min.hcl": []byte(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
  }
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := cfg.Settings
	if s.ChainPrefix != DefaultChainPrefix || s.MasqueradeBit != DefaultMasqueradeBit ||
		s.NodePortRange != (PortRange{DefaultNodePortMin, DefaultNodePortMax}) || s.LocalhostNodePorts || s.MasqueradeAll {
		t.Errorf("settings defaults: %+v", s)
	}
	svc := cfg.Services[0]
	if svc.Type != TypeClusterIP || svc.ExternalTrafficPolicy != PolicyCluster || svc.InternalTrafficPolicy != PolicyCluster ||
		svc.SessionAffinity != AffinityNone || svc.SessionAffinityTimeout != DefaultSessionAffinityTimeout {
		t.Errorf("service defaults: %+v", svc)
	}
	if p := svc.Ports[0]; p.Protocol != ProtoTCP || p.TargetPort != 80 || p.NodePort != 0 || p.Name != "" {
		t.Errorf("port defaults: %+v", p)
	}
	if e := svc.Endpoints[0]; !e.Ready || !e.Serving || e.Terminating || e.Ports != nil {
		t.Errorf("endpoint defaults: %+v", e)
	}
}

// null means "use the default", as in Terraform.
func TestNullIsUnset(t *testing.T) {
	cfg, diags := Parse(map[string][]byte{"null.hcl": []byte(`
settings {
  chain_prefix = null
}
service "web" {
  type        = null
  cluster_ips = ["10.0.0.1"]
  port {
    port        = 80
    target_port = null
  }
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Settings.ChainPrefix != DefaultChainPrefix || cfg.Services[0].Type != TypeClusterIP || cfg.Services[0].Ports[0].TargetPort != 80 {
		t.Errorf("null did not select the default: %+v", cfg.Services[0])
	}
}

func write(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFileNames(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "b.hcl", "")
	write(t, dir, "a.hcl", "")
	write(t, dir, ".#a.hcl", "")
	write(t, dir, "notes.txt", "")
	write(t, dir, "c.hcl.bak", "")
	got, diags := FileNames(dir)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := []string{filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("FileNames = %q, want %q", got, want)
	}

	// A directory named d.hcl is not skipped: every *.hcl entry is read.
	if err := os.Mkdir(filepath.Join(dir, "d.hcl"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, diags := FileNames(dir); len(diags) != 1 || !strings.Contains(diags[0].Detail, "d.hcl is a directory") || len(got) != 2 {
		t.Errorf("FileNames with a directory d.hcl = %q, %v", got, diags)
	}

	file := filepath.Join(dir, "notes.txt")
	if got, _ := FileNames(file); len(got) != 1 || got[0] != file {
		t.Errorf("FileNames(file) = %q, want the file itself", got)
	}
}

func TestLoadErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct{ path, summary string }{
		{empty, "no configuration files"},
		{filepath.Join(empty, "missing.hcl"), "cannot read configuration"},
	} {
		cfg, diags := Load(tc.path)
		if cfg == nil || cfg.Files == nil {
			t.Errorf("Load(%s) returned no Config with Files", tc.path)
		}
		if len(diags) != 1 || !strings.Contains(diags[0].Summary, tc.summary) {
			t.Errorf("Load(%s) = %v, want %q", tc.path, diags, tc.summary)
		}
	}
}

// Load keeps the sources of every file, even when one fails, so the
// diagnostics of all of them can show snippets.
func TestLoadKeepsFilesOnError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.hcl", "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 80\n  }\n}\n")
	write(t, dir, "b.hcl", "service \"api\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 80\n  }\n}\n")
	cfg, diags := Load(dir)
	if !diags.HasErrors() || len(cfg.Files) != 2 || cfg.Services != nil {
		t.Fatalf("Load = %+v, %v", cfg, diags)
	}
	d := diags[0]
	if d.Subject.Filename != filepath.Join(dir, "b.hcl") || d.Subject.Start.Line != 4 || d.Summary != "duplicate service address and port" {
		t.Errorf("diagnostic = %s at %v", d.Summary, d.Subject)
	}
}
