//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/svcnat/svcnat/integration/netlab"
)

// daemon is a running svcnat reconcile and its JSON log.
type daemon struct {
	cmd *exec.Cmd
	log *syncBuffer
	// seen counts the log lines already matched.
	seen int
}

// poisonShims are iptables-restore shims, and an nft shim for the scripts
// it reads (`nft -f -`), that refuse any payload naming "default/poison"
// and pass everything else to the real binary: a configuration that adds
// that service makes the apply fail and roll back.
func poisonShims(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-restore"} {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not found: %v", name, err)
		}
		script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
  if [ "$a" = "-V" ] || [ "$a" = "--version" ]; then exec %[1]q "$@"; fi
done
in=$(cat)
case "$in" in *default/poison*) echo "iptables-restore: line 2 failed" >&2; exit 1;; esac
printf '%%s\n' "$in" | exec %[1]q "$@"
`, real)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	real, err := exec.LookPath("nft")
	if err != nil {
		t.Skipf("nft not found: %v", err)
	}
	script := fmt.Sprintf(`#!/bin/sh
case " $* " in *" -f - "*) ;; *) exec %[1]q "$@";; esac
in=$(cat)
case "$in" in *default/poison*) echo "/dev/stdin:2:1-20: Error: Could not process rule: Operation not permitted" >&2; exit 1;; esac
printf '%%s\n' "$in" | exec %[1]q "$@"
`, real)
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startDaemon(t testing.TB, sv *Svcnat, args ...string) *daemon {
	t.Helper()
	return startCmd(t, sv.Cmd(append([]string{"reconcile", "--log-format", "json"}, args...)...))
}

// startCmd starts cmd, a svcnat reconcile, as startDaemon does.
func startCmd(t testing.TB, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, log: &syncBuffer{}}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("reconcile log:\n%s", d.log.String())
		}
	})
	return d
}

// await waits for a log line whose fields include every key=value of
// want (values compared as printed), after the lines already matched.
func (d *daemon) await(t testing.TB, within time.Duration, want ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		lines := strings.Split(d.log.String(), "\n")
		for i := d.seen; i < len(lines)-1; i++ {
			var rec map[string]any
			if json.Unmarshal([]byte(lines[i]), &rec) != nil {
				continue
			}
			ok := true
			for _, kv := range want {
				k, v, _ := strings.Cut(kv, "=")
				ok = ok && strings.Contains(fmt.Sprint(rec[k]), v)
			}
			if ok {
				d.seen = i + 1
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconcile log line with %q within %s", want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads the daemon's /metrics from inside the node namespace.
func scrape(t testing.TB, ns netlab.NS, url string) map[string]*dto.MetricFamily {
	t.Helper()
	body, err := ns.HTTPGet(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	return parseMetrics(t, body)
}

func parseMetrics(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("not Prometheus text format: %v\n%s", err, text)
	}
	return mf
}

// metric is the value of the series of name whose labels include labels
// (name=value pairs); -1 when there is none.
func metric(mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	fam, ok := mf[name]
	if !ok {
		return -1
	}
next:
	for _, m := range fam.Metric {
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
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
		}
	}
	return -1
}

// health asks a health-check node port from the client, as a load
// balancer would: the status line's code and the JSON body.
func health(t *testing.T, tl *trafficLab, port int) (code int, body map[string]any) {
	t.Helper()
	text, err := tl.Client.NS.HTTPGet(fmt.Sprintf("http://%s:%d/", tl.Client.NodeIP4, port))
	code = 200
	if err != nil {
		if !strings.Contains(err.Error(), "503") {
			t.Fatalf("health check port %d: %v", port, err)
		}
		code = 503
	}
	if err := json.Unmarshal([]byte(text), &body); err != nil {
		t.Fatalf("health check port %d: body %q: %v", port, text, err)
	}
	return code, body
}

// svcnat reconcile in the node namespace, on every backend: it applies at
// start, serves health-check node ports and metrics, repairs a flushed
// table within an interval and a deleted one at once (the canary; on
// nftables a flushed or deleted table within an interval), applies
// edits, keeps the old rules through a broken configuration and says
// where it is broken, rolls back a failed apply, re-reads on SIGHUP, and
// exits 0 on SIGTERM.
func TestReconcile(t *testing.T) {
	for _, backend := range []string{"nft", "legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tl := newTrafficLab(t, backend, netlab.Options{Backends: 2, HTTPPorts: []int{80}})
			web := trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0))...)
			lb := func(name string, hc int, node string) trService {
				s := trWeb(name, "10.32.0.70", trEndpoints(node, trBackendIP4(1))...)
				s.Type, s.ETP, s.HCNodePort = "LoadBalancer", "Local", hc
				s.Ports[0].NodePort = 30080
				return s
			}
			local, remote := lb("default/local", 30500, "node1"), lb("default/remote", 30501, "node2")
			remote.ClusterIPs, remote.Ports[0].NodePort = []string{"10.32.0.71"}, 30081
			tl.configure(t, web, local, remote)
			tl.SV.Env = append(tl.SV.Env, "PATH="+poisonShims(t)+":"+os.Getenv("PATH"))
			const interval = 3 * time.Second
			d := startDaemon(t, tl.SV, "--interval", interval.String(), "--metrics-addr", "127.0.0.1:9823")
			d.await(t, time.Minute, "msg=applied", "event=start", "generation=1")
			applied := tl.owned(t)
			remoteExpect(t, tl, "backend-0")

			// Health-check node ports: kube-proxy's answers.
			if code, body := health(t, tl, 30500); code != 200 || body["localEndpoints"] != 1.0 || body["serviceProxyHealthy"] != true ||
				fmt.Sprint(body["service"]) != "map[name:local namespace:default]" {
				t.Fatalf("health of a service with a local endpoint: %d %v", code, body)
			}
			if code, body := health(t, tl, 30501); code != 503 || body["localEndpoints"] != 0.0 {
				t.Fatalf("health of a service without local endpoints: %d %v", code, body)
			}
			mf := scrape(t, tl.Node, "http://127.0.0.1:9823/metrics")
			table := "nat"
			if backend == "nftables" {
				table = nftTableName
			}
			if metric(mf, "svcnat_applies_total", "op=apply", "result=success") != 1 || metric(mf, "svcnat_generation") != 1 ||
				metric(mf, "svcnat_last_apply_success") != 1 || metric(mf, "svcnat_owned_chains", "family=IPv4", "table="+table) < 5 {
				t.Fatalf("metrics after the first apply are wrong")
			}
			if _, err := tl.Node.HTTPGet("http://127.0.0.1:9823/healthz"); err != nil {
				t.Fatalf("healthz: %v", err)
			}
			// plan and show work beside the daemon, and see no canary.
			tl.SV.MustRun(t, 0, "plan", "--detailed-exitcode")

			if backend == "nftables" {
				// nft flush table empties every chain, the canary's one
				// rule too, and nft delete table takes the table whole:
				// the canary shows both between two ticks, or the next
				// tick does (on a loaded host a canary check backs off to
				// ten times what it took, past the interval).
				for _, cmd := range []string{"flush", "delete"} {
					tl.Node.Run(t, "nft", cmd, "table", "ip", nftTableName)
					rec := d.await(t, interval+10*time.Second, "msg=applied", "drift=true")
					t.Logf("nft %s table ip %s: repaired at event %v", cmd, nftTableName, rec["event"])
					if got := tl.owned(t); got != applied {
						t.Fatalf("after nft %s table ip %s:\n%s", cmd, nftTableName, applyDiff(applied, got))
					}
					remoteExpect(t, tl, "backend-0")
				}
			} else {
				// iptables -t nat -F empties every chain (the empty canary
				// stays): the next tick repairs it, within one interval.
				ipt := "iptables-" + backend
				tl.Node.Run(t, ipt, "-t", "nat", "-F")
				d.await(t, interval+10*time.Second, "msg=applied", "event=tick", "drift=true")
				if got := tl.owned(t); got != applied {
					t.Fatalf("after the flush:\n%s", applyDiff(applied, got))
				}
				// firewalld --reload style: flushed and deleted. The canary
				// goes with it and the repair does not wait for a tick.
				tl.Node.Run(t, ipt, "-t", "nat", "-F")
				tl.Node.Run(t, ipt, "-t", "nat", "-X")
				d.await(t, interval, "msg=canary chain gone", "tables=IPv4 nat")
				d.await(t, interval, "msg=applied", "event=canary lost")
				if got := tl.owned(t); got != applied {
					t.Fatalf("after the reload:\n%s", applyDiff(applied, got))
				}
			}
			remoteExpect(t, tl, "backend-0")

			// An edit: web moves to backend-1, the local service's
			// health-check port moves to 30502.
			local.HCNodePort = 30502
			writeCfgFile(t, tl.SV.Config, "10-services.hcl", web2(web).HCL()+local.HCL()+remote.HCL())
			d.await(t, interval+10*time.Second, "msg=applied", "drift=false")
			remoteExpect(t, tl, "backend-1")
			if code, _ := health(t, tl, 30502); code != 200 {
				t.Fatalf("the moved health check port answers %d", code)
			}
			if _, err := tl.Client.NS.HTTPGet(fmt.Sprintf("http://%s:30500/", tl.Client.NodeIP4)); err == nil {
				t.Fatal("the old health check port still answers")
			}
			edited := tl.owned(t)

			// A broken configuration: reported with file and line; the
			// rules stay.
			writeCfgFile(t, tl.SV.Config, "20-broken.hcl", "service \"default/x\" {\n  cluster_ips = [\"10.32.0.99\"]\n  typo = 1\n}\n")
			d.await(t, interval+10*time.Second, "msg=configuration rejected; keeping the last good configuration", "diagnostics=20-broken.hcl:3:3: Unsupported argument")
			if got := tl.owned(t); got != edited {
				t.Fatalf("a broken configuration changed the rules:\n%s", applyDiff(edited, got))
			}
			os.Remove(filepath.Join(tl.SV.Config, "20-broken.hcl"))

			// A failing apply rolls back, and says so in the metrics.
			poison := trWeb("default/poison", "10.32.0.90", trEndpoints("node1", trBackendIP4(0))...)
			writeCfgFile(t, tl.SV.Config, "30-poison.hcl", poison.HCL())
			d.await(t, interval+10*time.Second, "msg=apply failed", "err=restored")
			if got := tl.owned(t); got != edited {
				t.Fatalf("a failed apply changed the rules:\n%s", applyDiff(edited, got))
			}
			mf = scrape(t, tl.Node, "http://127.0.0.1:9823/metrics")
			if metric(mf, "svcnat_rollbacks_total", "reason=failure") < 1 || metric(mf, "svcnat_last_apply_success") != 0 ||
				metric(mf, "svcnat_reconcile_errors_total") < 1 || metric(mf, "svcnat_config_load_failures_total") < 1 ||
				metric(mf, "svcnat_drift_detected_total") < 2 {
				t.Fatal("metrics after a failed apply are wrong")
			}
			// Without it the rules are already right: nothing to apply.
			os.Remove(filepath.Join(tl.SV.Config, "30-poison.hcl"))
			d.await(t, interval+10*time.Second, "msg=configuration changed", "services=3")
			tl.SV.MustRun(t, 0, "plan", "--detailed-exitcode")

			d.cmd.Process.Signal(syscall.SIGHUP)
			d.await(t, 10*time.Second, "event=reload")
			d.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- d.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("reconcile after SIGTERM: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("reconcile did not exit after SIGTERM")
			}
			d.await(t, time.Second, "msg=stopping")

			// A one-shot command's textfile.
			prom := filepath.Join(t.TempDir(), "svcnat.prom")
			tl.SV.MustRun(t, 0, "destroy", "-auto-approve", "--metrics-file", prom)
			text, err := os.ReadFile(prom)
			if err != nil {
				t.Fatal(err)
			}
			mf = parseMetrics(t, string(text))
			if metric(mf, "svcnat_applies_total", "op=destroy", "result=success") != 1 || metric(mf, "svcnat_last_apply_success") != 1 {
				t.Fatalf("destroy's textfile:\n%s", text)
			}
			if backend == "nftables" {
				if out := nftTables(t, tl.Node.Name); strings.Contains(out, nftTableName) {
					t.Fatalf("destroy left svcnat's tables (for the canary?):\n%s", out)
				}
			} else if out := tl.Node.Run(t, "iptables-"+backend+"-save"); strings.Contains(out, "SVCNAT") {
				t.Fatalf("destroy left svcnat's chains (the canaries too?):\n%s", out)
			}
		})
	}
}

// web2 is web sent to backend-1.
func web2(s trService) trService {
	s.Endpoints = trEndpoints("node1", trBackendIP4(1))
	return s
}

func writeCfgFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
