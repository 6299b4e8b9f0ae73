package integration

// The lab the real-kernel plan/apply tests share: fresh namespaces with
// internal/testns, configurations, and helpers that read the rules back
// with the backend's own iptables-save.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/state"
	"github.com/svcnat/svcnat/internal/testns"
)

// applyBackends are the backends every test here runs on.
var applyBackends = []string{"nft", "legacy"}

// applyPrefix is the default chain prefix the configurations below use.
const applyPrefix = "SVCNAT"

// applyForBackends runs fn as one parallel subtest per backend.
func applyForBackends(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Parallel()
	for _, b := range applyBackends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// applyBaseConfig: a NodePort service with three endpoints (probabilities
// 1/3 and 1/2), a dual-stack ClusterIP service, and a UDP service with
// client-IP affinity (recent module), on node1.
const applyBaseConfig = `settings {
  node          = "node1"
  cluster_cidrs = ["10.64.0.0/14", "fd00:10:64::/48"]
}

service "default/web" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.61"]

  port {
    name        = "http"
    protocol    = "TCP"
    port        = 80
    target_port = 8080
    node_port   = 30080
  }

  endpoint {
    address = "10.64.1.2"
    node    = "node1"
  }
  endpoint {
    address = "10.64.2.2"
    node    = "node1"
  }
  endpoint {
    address = "10.64.3.2"
    node    = "node2"
  }
}

service "default/api" {
  cluster_ips = ["10.32.0.62", "fd00:32::62"]

  port {
    name = "grpc"
    port = 9000
  }

  endpoint {
    address = "10.64.1.7"
  }
  endpoint {
    address = "10.64.2.7"
  }
  endpoint {
    address = "fd00:10:64::7"
  }
}

service "kube-system/dns" {
  cluster_ips      = ["10.32.0.10"]
  session_affinity = "ClientIP"

  port {
    name     = "dns"
    protocol = "UDP"
    port     = 53
  }

  endpoint {
    address = "10.64.1.3"
    node    = "node1"
  }
  endpoint {
    address = "10.64.2.3"
    node    = "node2"
  }
}
`

// applyRichConfig adds the forms the base configuration does not produce:
// a dual-stack LoadBalancer with external IPs, source ranges, a health
// check node port, local traffic policies and affinity with a timeout, and
// an SCTP NodePort.
const applyRichConfig = `service "default/lb" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["10.32.0.71", "fd00:32::71"]
  external_ips                = ["192.168.1.50"]
  load_balancer_ips           = ["203.0.113.7", "2001:db8::7"]
  load_balancer_source_ranges = ["198.51.100.0/24", "2001:db8:1::/48"]
  external_traffic_policy     = "Local"
  internal_traffic_policy     = "Local"
  health_check_node_port      = 30500
  session_affinity            = "ClientIP"
  session_affinity_timeout    = 600

  port {
    name        = "https"
    protocol    = "TCP"
    port        = 443
    target_port = 8443
    node_port   = 30443
  }

  port {
    name      = "http"
    port      = 80
    node_port = 30081
  }

  endpoint {
    address = "10.64.2.4"
    node    = "node1"
  }
  endpoint {
    address     = "fd00:10:64::5"
    node        = "node3"
    ready       = false
    serving     = true
    terminating = true
  }
  endpoint {
    address = "10.64.3.9"
  }
}

service "kube-system/sctp-echo" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.70"]

  port {
    protocol  = "SCTP"
    port      = 7
    node_port = 30007
  }

  endpoint {
    address = "10.64.1.8"
  }
}
`

// applyChangedAPI is the base configuration with one IPv4 endpoint of
// default/api replaced.
func applyChangedAPI() string {
	return strings.Replace(applyBaseConfig, `"10.64.2.7"`, `"10.64.2.8"`, 1)
}

// applyChangedAPIBoth also replaces default/api's IPv6 endpoint, so that
// both families change.
func applyChangedAPIBoth() string {
	return strings.Replace(applyChangedAPI(), `"fd00:10:64::7"`, `"fd00:10:64::8"`, 1)
}

// applyBulkConfig is n ClusterIP services with two endpoints each; shift
// moves every endpoint, so going from shift 0 to 1 replaces every endpoint
// chain and rewrites every service chain.
func applyBulkConfig(n, shift int) string {
	var b strings.Builder
	b.WriteString("settings {\n  node          = \"node1\"\n  cluster_cidrs = [\"10.64.0.0/14\"]\n}\n")
	for i := range n {
		fmt.Fprintf(&b, `
service "bulk/s%03d" {
  cluster_ips = ["10.33.%d.%d"]

  port {
    port = 80
  }

  endpoint {
    address = "10.64.%d.%d"
  }
  endpoint {
    address = "10.65.%d.%d"
  }
}
`, i, i/200, i%200+1, i/100, (i%100)*2+shift+1, i/100, (i%100)*2+shift+1)
	}
	return b.String()
}

// applyLab is one test's namespace, backend, configuration and state.
type applyLab struct {
	t  *testing.T
	ns *testns.NS
	b  string
	sv *Svcnat
}

func newApplyLab(t *testing.T, backend string, config string) *applyLab {
	t.Helper()
	ns := testns.New(t)
	dir := writeConfig(t, map[string]string{"services.hcl": config})
	return &applyLab{t: t, ns: ns, b: backend, sv: NewSvcnat(t, ns.Name, dir, backend)}
}

// where names the namespace and backend in failure messages.
func (l *applyLab) where() string {
	return fmt.Sprintf("[netns %s, backend %s]", l.ns.Name, l.b)
}

// setConfig replaces the configuration (one file, services.hcl, plus any
// extra files given as name, body pairs).
func (l *applyLab) setConfig(body string, extra ...string) {
	l.t.Helper()
	ents, err := os.ReadDir(l.sv.Config)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, e := range ents {
		os.Remove(filepath.Join(l.sv.Config, e.Name()))
	}
	files := map[string]string{"services.hcl": body}
	for i := 0; i+1 < len(extra); i += 2 {
		files[extra[i]] = extra[i+1]
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(l.sv.Config, name), []byte(text), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
}

// must runs svcnat and fails unless it exits with want.
func (l *applyLab) must(want int, args ...string) Result {
	l.t.Helper()
	r := l.sv.Run(l.t, args...)
	if r.Code != want {
		l.t.Fatalf("%s svcnat %s: want exit %d, got %s", l.where(), strings.Join(args, " "), want, r)
	}
	return r
}

// ipt runs the backend's own iptables (or ip6tables) in the namespace.
func (l *applyLab) ipt(fam backend.Family, args ...string) {
	l.t.Helper()
	applyIPT(l.t, l.ns, l.b, fam, args...)
}

func applyIPT(t *testing.T, ns *testns.NS, name string, fam backend.Family, args ...string) {
	t.Helper()
	bin := "iptables-" + name
	if fam == backend.IPv6 {
		bin = "ip6tables-" + name
	}
	if _, err := ns.Exec("", bin, append([]string{"-w", "10"}, args...)...); err != nil {
		t.Fatalf("[netns %s, backend %s] %v", ns.Name, name, err)
	}
}

// save returns the raw iptables-save output of one family.
func (l *applyLab) save(fam backend.Family) string {
	l.t.Helper()
	return applySave(l.t, l.ns, l.b, fam)
}

func applySave(t *testing.T, ns *testns.NS, name string, fam backend.Family) string {
	t.Helper()
	bin := "iptables-" + name + "-save"
	if fam == backend.IPv6 {
		bin = "ip6tables-" + name + "-save"
	}
	out, err := ns.Exec("", bin)
	if err != nil {
		t.Fatalf("[netns %s, backend %s] %v", ns.Name, name, err)
	}
	return out
}

// ownedFam is the owned part of one family's live rules, in the form the
// state directory's generations use.
func (l *applyLab) ownedFam(fam backend.Family) string {
	l.t.Helper()
	rs, err := rules.ParseSave(fam, strings.NewReader(l.save(fam)))
	if err != nil {
		l.t.Fatalf("%s parsing %s save: %v", l.where(), fam, err)
	}
	return rs.Owned(applyPrefix).Text()
}

// owned is the owned part of both families.
func (l *applyLab) owned() string {
	l.t.Helper()
	return "## IPv4\n" + l.ownedFam(backend.IPv4) + "## IPv6\n" + l.ownedFam(backend.IPv6)
}

// full is both families' whole save output without comment lines and
// counters.
func (l *applyLab) full() string {
	l.t.Helper()
	return "## IPv4\n" + applyNormalize(l.save(backend.IPv4), false) +
		"## IPv6\n" + applyNormalize(l.save(backend.IPv6), false)
}

// foreign is full without svcnat's chains and its jumps into them.
func (l *applyLab) foreign() string {
	l.t.Helper()
	return "## IPv4\n" + applyNormalize(l.save(backend.IPv4), true) +
		"## IPv6\n" + applyNormalize(l.save(backend.IPv6), true)
}

// applyNormalize drops comment lines and counters from an iptables-save
// dump and, with dropOwned, every SVCNAT chain, rule in one, and jump into
// one.
func applyNormalize(save string, dropOwned bool) string {
	var b strings.Builder
	for _, line := range strings.Split(save, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, ":") {
			if i := strings.LastIndex(line, " ["); i > 0 && strings.HasSuffix(line, "]") {
				line = line[:i]
			}
		}
		if dropOwned && (strings.HasPrefix(line, ":"+applyPrefix+"-") ||
			strings.HasPrefix(line, "-A "+applyPrefix+"-") ||
			strings.Contains(line, " -j "+applyPrefix+"-") ||
			strings.Contains(line, " -g "+applyPrefix+"-")) {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// applyDiff lists the lines only in want (-) or only in got (+), for
// failure messages.
func applyDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] < w[l] {
			fmt.Fprintf(&b, "- %s\n", l)
			w[l]--
		}
	}
	w = count(want)
	for _, l := range strings.Split(got, "\n") {
		if w[l] < g[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
			g[l]--
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)\n--- want\n" + want + "--- got\n" + got
	}
	return b.String()
}

// same fails when got differs from want.
func (l *applyLab) same(what, want, got string) {
	l.t.Helper()
	if got != want {
		l.t.Fatalf("%s %s differ (- want, + got):\n%s", l.where(), what, applyDiff(want, got))
	}
}

// generation is the generation recorded in the state directory.
func (l *applyLab) generation() int64 {
	l.t.Helper()
	d, err := state.Open(l.sv.StateDir)
	if err != nil {
		l.t.Fatal(err)
	}
	st, err := d.Load()
	if err != nil {
		l.t.Fatalf("%s loading state from %s: %v", l.where(), l.sv.StateDir, err)
	}
	return st.Generation
}

// applyPlanJSON is the part of `plan --json` these tests read.
type applyPlanJSON struct {
	FormatVersion string `json:"format_version"`
	Backend       string `json:"backend"`
	Changed       bool   `json:"changed"`
	Services      []struct {
		Name    string   `json:"name"`
		Action  string   `json:"action"`
		Details []string `json:"details"`
	} `json:"services"`
	Changes []struct {
		Family  string `json:"family"`
		Table   string `json:"table"`
		Chain   string `json:"chain"`
		Action  string `json:"action"`
		Builtin bool   `json:"builtin"`
		Service string `json:"service"`
	} `json:"changes"`
}
