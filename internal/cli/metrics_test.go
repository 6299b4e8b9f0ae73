package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/svcnat/svcnat/internal/engine"
)

// textfile reads a --metrics-file as node_exporter would: name → value
// of the series without labels.
func textfile(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			if len(m.Label) > 0 {
				continue
			}
			switch {
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			}
		}
	}
	return out
}

// A run's textfile tells what the state records: a run that changes
// nothing is a success at the recorded generation and time, and a failed
// one keeps the recorded generation. An alert on
// svcnat_last_apply_success == 0 must not fire on a nightly no-op.
func TestMetricsFileTellsTheRecord(t *testing.T) {
	h := newFakeHost(t)
	prom := filepath.Join(t.TempDir(), "svcnat.prom")
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.must(ExitOK, "apply", "-auto-approve")
	rec, err := engine.ReadRecorded(h.stateDir)
	if err != nil || rec.Generation != 2 {
		t.Fatalf("record %+v, %v", rec, err)
	}
	at := float64(rec.AppliedAt.UnixNano()) / 1e9

	for _, cmd := range [][]string{{"apply", "-auto-approve"}, {"apply", "-auto-approve", "--confirm-timeout", "1m"}} {
		h.must(ExitOK, append(cmd, "--metrics-file", prom)...)
		m := textfile(t, prom)
		if m["svcnat_generation"] != 2 || m["svcnat_last_apply_success"] != 1 || m["svcnat_last_apply_timestamp_seconds"] != at {
			t.Fatalf("%s with nothing to change: %v, want generation 2, success 1, time %v", cmd, m, at)
		}
	}

	// A failed apply: the rules and the record stay at generation 2.
	writeFile(t, h.config, "nginx.hcl", nginx)
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-A SVCNAT-SVC-") })
	_, _, code := h.run("apply", "-auto-approve", "--metrics-file", prom)
	h.fake.FailWhen(nil)
	m := textfile(t, prom)
	if code != ExitError || m["svcnat_generation"] != 2 || m["svcnat_last_apply_success"] != 0 || m["svcnat_last_apply_timestamp_seconds"] <= at {
		t.Fatalf("a failed apply (exit %d): %v, want generation 2, success 0, a later time", code, m)
	}

	// A refused one (nothing is tried) and a destroy.
	h.must(ExitOK, "destroy", "-auto-approve", "--metrics-file", prom)
	if m := textfile(t, prom); m["svcnat_generation"] != 3 || m["svcnat_last_apply_success"] != 1 {
		t.Fatalf("destroy: %v", m)
	}
	h.must(ExitOK, "destroy", "-auto-approve", "--metrics-file", prom)
	if m := textfile(t, prom); m["svcnat_generation"] != 3 || m["svcnat_last_apply_success"] != 1 || m["svcnat_last_apply_timestamp_seconds"] == 0 {
		t.Fatalf("destroy with nothing to destroy: %v", m)
	}
}
