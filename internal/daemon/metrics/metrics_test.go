package metrics

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
)

// Read parses a textfile as node_exporter's textfile collector would.
func read(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse as Prometheus text: %v", path, err)
	}
	return mf
}

// value is the value of the series of family name whose labels include
// labels.
func value(t *testing.T, mf map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	fam, ok := mf[name]
	if !ok {
		t.Fatalf("no %s", name)
	}
next:
	for _, m := range fam.Metric {
		for k, v := range labels {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == k && l.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no %s with %v", name, labels)
	return 0
}

const web = `service "default/web" {
  cluster_ips = ["10.32.0.61"]
  port {
    port = 80
  }
  endpoint {
    address = "10.64.1.2"
  }
}
`

func TestTextfileAfterApplyAndRollback(t *testing.T) {
	cfg, diags := config.Parse(map[string][]byte{"web.hcl": []byte(web)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e := &engine.Engine{Host: engine.Host{Kernel: iptables.NewFake()}, StateDir: t.TempDir()}
	path := filepath.Join(t.TempDir(), "svcnat.prom")

	m := New()
	m.Applied(e.Apply(context.Background(), cfg, "n1"))
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	mf := read(t, path)
	if value(t, mf, "svcnat_last_apply_success", nil) != 1 || value(t, mf, "svcnat_generation", nil) != 1 ||
		value(t, mf, "svcnat_applies_total", map[string]string{"op": "apply", "result": "success"}) != 1 ||
		value(t, mf, "svcnat_apply_duration_seconds", map[string]string{"op": "apply"}) != 1 ||
		value(t, mf, "svcnat_last_apply_timestamp_seconds", nil) == 0 {
		t.Fatal("apply's series are wrong")
	}
	// SERVICES, SVC, SEP, MARK-MASQ, POSTROUTING, NODEPORTS and more: at
	// least the three of the service and its endpoint.
	if n := value(t, mf, "svcnat_owned_chains", map[string]string{"family": "IPv4", "table": "nat"}); n < 3 {
		t.Fatalf("owned nat chains: %v", n)
	}
	if n := value(t, mf, "svcnat_owned_rules", map[string]string{"family": "IPv4", "table": "nat"}); n < 5 {
		t.Fatalf("owned nat rules: %v", n)
	}

	cfg2, _ := config.Parse(map[string][]byte{"web.hcl": []byte(web + `service "default/b" {
  cluster_ips = ["10.32.0.62"]
  port {
    port = 80
  }
}
`)})
	e.Apply(context.Background(), cfg2, "n1")
	m = New()
	m.Applied(e.Rollback(context.Background(), "SVCNAT"))
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	mf = read(t, path)
	if value(t, mf, "svcnat_rollbacks_total", map[string]string{"reason": "rollback"}) != 1 || value(t, mf, "svcnat_generation", nil) != 3 {
		t.Fatal("rollback's series are wrong")
	}
}

// A reconcile pass that holds says so in svcnat_held{reason} (1 for its
// reason, 0 for the other) and reports the recorded generation, but
// leaves svcnat_last_apply_success to the last run that changed rules or
// tried to: a failed repair stays a failure through the held passes that
// follow, and a pass that holds nothing clears the gauge.
// On nftables svcnat's table is its own: its chains are counted whatever
// their names (services, service-…), its sets and maps are not.
func TestOwnedChainsOnNFTables(t *testing.T) {
	cfg, diags := config.Parse(map[string][]byte{"web.hcl": []byte(web)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e := &engine.Engine{Host: engine.Host{Kernel: nftables.NewFake("")}, StateDir: t.TempDir()}
	m := New()
	m.Applied(e.Apply(context.Background(), cfg, "n1"))
	path := filepath.Join(t.TempDir(), "svcnat.prom")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	mf := read(t, path)
	// services, the service's chain and the endpoint's, the hooks' base
	// chains and more; not the sets and maps (cluster-ips, service-ips …).
	chains := value(t, mf, "svcnat_owned_chains", map[string]string{"family": "IPv4", "table": "svcnat"})
	rs, err := e.Kernel.Read(backend.IPv4, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range rs.Table("svcnat").Chains {
		if c.Kind == backend.KindChain {
			want++
		}
	}
	if want < 5 || chains != float64(want) {
		t.Fatalf("owned chains of table svcnat: %v, want the table's %d chains", chains, want)
	}
}

func TestHeld(t *testing.T) {
	m := New()
	path := filepath.Join(t.TempDir(), "svcnat.prom")
	write := func() map[string]*dto.MetricFamily {
		t.Helper()
		if err := m.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		return read(t, path)
	}
	mf := write()
	if value(t, mf, "svcnat_held", map[string]string{"reason": HeldPending}) != 0 || value(t, mf, "svcnat_held", map[string]string{"reason": HeldReverted}) != 0 {
		t.Fatal("svcnat_held is not 0 for both reasons from the start")
	}
	m.Applied(&engine.Result{Op: engine.OpRepair}, context.DeadlineExceeded)
	m.Held(&engine.Recorded{Generation: 3}, HeldReverted)
	mf = write()
	if value(t, mf, "svcnat_held", map[string]string{"reason": HeldReverted}) != 1 || value(t, mf, "svcnat_held", map[string]string{"reason": HeldPending}) != 0 ||
		value(t, mf, "svcnat_last_apply_success", nil) != 0 || value(t, mf, "svcnat_generation", nil) != 3 {
		t.Fatalf("while held after a failed repair: held %v, success %v, generation %v", value(t, mf, "svcnat_held", map[string]string{"reason": HeldReverted}),
			value(t, mf, "svcnat_last_apply_success", nil), value(t, mf, "svcnat_generation", nil))
	}
	m.Held(&engine.Recorded{Generation: 3}, HeldPending)
	m.Held(&engine.Recorded{Generation: 3}, "")
	mf = write()
	if value(t, mf, "svcnat_held", map[string]string{"reason": HeldPending}) != 0 || value(t, mf, "svcnat_held", map[string]string{"reason": HeldReverted}) != 0 {
		t.Fatal("svcnat_held stays 1 after a pass that holds nothing")
	}
}

// A file that cannot be written is named as the operator gave it, not by
// the temporary file the atomic write goes through.
func TestWriteFileErrorNamesThePath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	path := filepath.Join(dir, "svcnat.prom")
	err := New().WriteFile(path)
	if err == nil || err.Error() != path+": no such file or directory" {
		t.Fatalf("WriteFile into a missing directory: %v, want %q", err, path+": no such file or directory")
	}
	// A directory where the file should be: the rename fails.
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := New().WriteFile(path); err == nil || !strings.HasPrefix(err.Error(), path+": ") || strings.Contains(err.Error(), "svcnat.prom0") || strings.Count(err.Error(), "svcnat.prom") != 1 {
		t.Fatalf("WriteFile onto a directory: %v", err)
	}
}
