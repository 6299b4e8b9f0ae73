package integration

// Real-kernel tests of plan, apply, saved plans, rollback, destroy, show,
// the state lock and backend detection (issue 3, "Tests that must exist").
// Every test builds fresh namespaces with internal/testns and runs on both
// iptables backends, passing --backend explicitly (a fresh namespace is
// empty in both, so auto would always pick nft), except TestBackendAuto.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/testns"
	"github.com/svcnat/svcnat/rules"
	"github.com/svcnat/svcnat/state"
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
func (l *applyLab) ipt(fam rules.Family, args ...string) {
	l.t.Helper()
	applyIPT(l.t, l.ns, l.b, fam, args...)
}

func applyIPT(t *testing.T, ns *testns.NS, backend string, fam rules.Family, args ...string) {
	t.Helper()
	bin := "iptables-" + backend
	if fam == rules.IPv6 {
		bin = "ip6tables-" + backend
	}
	if _, err := ns.Exec("", bin, append([]string{"-w", "10"}, args...)...); err != nil {
		t.Fatalf("[netns %s, backend %s] %v", ns.Name, backend, err)
	}
}

// save returns the raw iptables-save output of one family.
func (l *applyLab) save(fam rules.Family) string {
	l.t.Helper()
	return applySave(l.t, l.ns, l.b, fam)
}

func applySave(t *testing.T, ns *testns.NS, backend string, fam rules.Family) string {
	t.Helper()
	bin := "iptables-" + backend + "-save"
	if fam == rules.IPv6 {
		bin = "ip6tables-" + backend + "-save"
	}
	out, err := ns.Exec("", bin)
	if err != nil {
		t.Fatalf("[netns %s, backend %s] %v", ns.Name, backend, err)
	}
	return out
}

// ownedFam is the owned part of one family's live rules, in the form the
// state directory's backups and generations use.
func (l *applyLab) ownedFam(fam rules.Family) string {
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
	return "## IPv4\n" + l.ownedFam(rules.IPv4) + "## IPv6\n" + l.ownedFam(rules.IPv6)
}

// full is both families' whole save output without comment lines and
// counters.
func (l *applyLab) full() string {
	l.t.Helper()
	return "## IPv4\n" + applyNormalize(l.save(rules.IPv4), false) +
		"## IPv6\n" + applyNormalize(l.save(rules.IPv6), false)
}

// foreign is full without svcnat's chains and its jumps into them.
func (l *applyLab) foreign() string {
	l.t.Helper()
	return "## IPv4\n" + applyNormalize(l.save(rules.IPv4), true) +
		"## IPv6\n" + applyNormalize(l.save(rules.IPv6), true)
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

// TestApplyRoundTrip: empty namespace → changes → apply → no changes →
// change one endpoint → the plan names only that service's chains →
// apply → no changes.
func TestApplyRoundTrip(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.setConfig(applyBaseConfig, "rich.hcl", applyRichConfig)

		r := l.must(2, "plan", "--detailed-exitcode")
		if !strings.Contains(r.Stdout, "+ service default/web") || !strings.Contains(r.Stdout, "Plan: ") {
			t.Fatalf("%s plan of an empty namespace does not add default/web: %s", l.where(), r)
		}
		r = l.must(0, "apply", "-auto-approve")
		if !strings.Contains(r.Stdout, "Apply complete!") {
			t.Fatalf("%s apply: no \"Apply complete!\": %s", l.where(), r)
		}
		// Every rule svcnat wrote must read back in the form it renders:
		// probabilities, marks, masks, recent, addrtype, IPv6, SCTP.
		r = l.must(0, "plan", "--detailed-exitcode")
		if !strings.Contains(r.Stdout, "No changes.") {
			t.Fatalf("%s plan after apply: %s", l.where(), r)
		}
		for _, want := range []string{"--probability 0.33333333349", "MARK --set-xmark 0x4000/0x4000", "-m recent", "-p sctp"} {
			if !strings.Contains(l.save(rules.IPv4), want) {
				t.Fatalf("%s the live IPv4 rules lack %q; the configuration should produce it:\n%s", l.where(), want, l.save(rules.IPv4))
			}
		}
		if !strings.Contains(l.save(rules.IPv6), "fd00:32::62") {
			t.Fatalf("%s the live IPv6 rules lack default/api's cluster IP:\n%s", l.where(), l.save(rules.IPv6))
		}
		if g := l.generation(); g != 1 {
			t.Fatalf("%s generation after the first apply: got %d, want 1", l.where(), g)
		}

		// One endpoint of one service changes.
		l.setConfig(applyChangedAPI(), "rich.hcl", applyRichConfig)
		l.must(2, "plan", "--detailed-exitcode")
		r = l.must(2, "plan", "--json", "--detailed-exitcode")
		var p applyPlanJSON
		if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
			t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
		}
		if !p.Changed || p.Backend != b || len(p.Changes) == 0 {
			t.Fatalf("%s plan --json: want changes on backend %s, got %s", l.where(), b, r.Stdout)
		}
		if len(p.Services) != 1 || p.Services[0].Name != "default/api" {
			t.Fatalf("%s plan --json: want only service default/api, got %+v", l.where(), p.Services)
		}
		for _, c := range p.Changes {
			if c.Service != "default/api" || c.Builtin || c.Family != "ipv4" ||
				!strings.HasPrefix(c.Chain, applyPrefix+"-SVC-") && !strings.HasPrefix(c.Chain, applyPrefix+"-SEP-") {
				t.Fatalf("%s plan --json: change %+v is not one of default/api's IPv4 service or endpoint chains; plan:\n%s", l.where(), c, r.Stdout)
			}
		}
		text := l.must(0, "plan").Stdout
		if !strings.Contains(text, "~ service default/api") || !strings.Contains(text, "10.64.2.8") {
			t.Fatalf("%s plan does not name default/api's new endpoint:\n%s", l.where(), text)
		}
		for _, other := range []string{"default/web", "kube-system/dns", "default/lb", "kube-system/sctp-echo"} {
			if strings.Contains(text, other) {
				t.Fatalf("%s plan names %s, which did not change:\n%s", l.where(), other, text)
			}
		}
		l.must(0, "apply", "-auto-approve")
		l.must(0, "plan", "--detailed-exitcode")
		if g := l.generation(); g != 2 {
			t.Fatalf("%s generation after the second apply: got %d, want 2", l.where(), g)
		}
		// Applying again with nothing to do records nothing.
		l.must(0, "apply", "-auto-approve")
		if g := l.generation(); g != 2 {
			t.Fatalf("%s an empty apply recorded generation %d, want 2", l.where(), g)
		}
	})
}

// applyDockerRules adds what Docker (and an operator) leave in nat, filter
// and mangle, for IPv4 and IPv6, with the backend's own iptables.
func applyDockerRules(l *applyLab) {
	l.t.Helper()
	v4, v6 := rules.IPv4, rules.IPv6
	for _, c := range []struct {
		fam  rules.Family
		args string
	}{
		{v4, "-t nat -N DOCKER"},
		{v4, "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"},
		{v4, "-t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"},
		{v4, "-t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"},
		{v4, "-t nat -A DOCKER -i docker0 -j RETURN"},
		{v4, "-t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"},
		{v4, "-t filter -N DOCKER"},
		{v4, "-t filter -N DOCKER-USER"},
		{v4, "-t filter -N DOCKER-ISOLATION-STAGE-1"},
		{v4, "-t filter -P FORWARD DROP"},
		{v4, "-t filter -A INPUT -i lo -j ACCEPT"},
		{v4, "-t filter -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"},
		{v4, "-t filter -A FORWARD -j DOCKER-USER"},
		{v4, "-t filter -A FORWARD -j DOCKER-ISOLATION-STAGE-1"},
		{v4, "-t filter -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"},
		{v4, "-t filter -A FORWARD -o docker0 -j DOCKER"},
		{v4, "-t filter -A DOCKER-USER -j RETURN"},
		{v4, "-t filter -A DOCKER-ISOLATION-STAGE-1 -j RETURN"},
		{v4, "-t filter -A OUTPUT -o lo -j ACCEPT"},
		{v4, "-t mangle -A PREROUTING -i docker0 -j MARK --set-xmark 0x1/0xffffffff"},
		{v6, "-t nat -N DOCKER"},
		{v6, "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"},
		{v6, "-t filter -N DOCKER-USER"},
		{v6, "-t filter -A INPUT -i lo -j ACCEPT"},
		{v6, "-t filter -A FORWARD -j DOCKER-USER"},
	} {
		l.ipt(c.fam, strings.Fields(c.args)...)
	}
}

// TestApplyForeignRulesUntouched: Docker-like chains and rules are byte for
// byte the same after apply, a second apply, rollback and destroy.
func TestApplyForeignRulesUntouched(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		applyDockerRules(l)
		before := l.foreign()
		if !strings.Contains(before, ":DOCKER-USER") || !strings.Contains(before, "MASQUERADE") ||
			!strings.Contains(before, ":FORWARD DROP") {
			t.Fatalf("%s the Docker-like rules are not in place:\n%s", l.where(), before)
		}
		check := func(after string) {
			t.Helper()
			l.same("non-svcnat rules after "+after, before, l.foreign())
		}
		l.must(0, "apply", "-auto-approve")
		if !strings.Contains(l.save(rules.IPv4), ":"+applyPrefix+"-SERVICES") {
			t.Fatalf("%s apply wrote no SERVICES chain:\n%s", l.where(), l.save(rules.IPv4))
		}
		check("apply")
		l.must(0, "plan", "--detailed-exitcode")
		l.setConfig(applyChangedAPIBoth())
		l.must(0, "apply", "-auto-approve")
		check("a second apply")
		l.must(0, "rollback", "-auto-approve")
		check("rollback")
		l.must(0, "destroy", "-auto-approve")
		check("destroy")
		for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
			if s := l.save(fam); strings.Contains(s, applyPrefix+"-") {
				t.Fatalf("%s %s rules still name an svcnat chain after destroy:\n%s", l.where(), fam, s)
			}
		}
	})
}

// TestStalePlan: a saved plan made stale by a manual rule in an owned chain
// is refused and changes nothing; the same plan applies once the live rules
// are back to what it was made against.
func TestStalePlan(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.must(0, "apply", "-auto-approve")
		l.setConfig(applyChangedAPIBoth())
		planFile := filepath.Join(t.TempDir(), "api.plan")
		l.must(2, "plan", "--detailed-exitcode", "-out", planFile)

		manual := []string{"-t", "nat", "-I", applyPrefix + "-SERVICES", "-s", "1.2.3.4", "-j", "RETURN"}
		l.ipt(rules.IPv4, manual...)
		before := l.full()
		r := l.must(1, "apply", planFile)
		if !strings.Contains(r.Stderr, "stale plan") {
			t.Fatalf("%s apply of a stale plan: no \"stale plan\" in stderr: %s", l.where(), r)
		}
		if !strings.Contains(r.Stderr, "1.2.3.4") {
			t.Fatalf("%s apply of a stale plan does not show what changed since (the 1.2.3.4 rule): %s", l.where(), r)
		}
		l.same("live rules after a refused stale plan", before, l.full())
		if g := l.generation(); g != 1 {
			t.Fatalf("%s a refused plan recorded generation %d, want 1", l.where(), g)
		}

		manual[2] = "-D"
		l.ipt(rules.IPv4, manual...)
		l.must(0, "apply", planFile)
		l.must(0, "plan", "--detailed-exitcode")
		if g := l.generation(); g != 2 {
			t.Fatalf("%s generation after applying the saved plan: got %d, want 2", l.where(), g)
		}
	})
}

// applyRestoreShims writes iptables-restore shims for both backends and
// families into a new directory and returns it and the call counter's
// path. The shims pass -V through to the real binary (svcnat probes the
// version) and otherwise count the call: call failOn (every call when 0)
// fails as a rejected payload would, the others run the real binary.
func applyRestoreShims(t *testing.T, failOn int) (dir, counter string) {
	t.Helper()
	dir = t.TempDir()
	counter = filepath.Join(dir, "calls")
	for _, name := range []string{"iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-restore"} {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not found: %v", name, err)
		}
		script := fmt.Sprintf(`#!/bin/sh
# Test shim for %[1]s: fails call %[3]d (every call when 0).
for a in "$@"; do
  if [ "$a" = "-V" ] || [ "$a" = "--version" ]; then exec %[2]q "$@"; fi
done
n=$(( $(cat %[4]q 2>/dev/null || echo 0) + 1 ))
echo "$n" > %[4]q
if [ %[3]d -eq 0 ] || [ "$n" -eq %[3]d ]; then
  cat >/dev/null
  echo "iptables-restore: line 3 failed" >&2
  exit 1
fi
exec %[2]q "$@"
`, name, real, failOn, counter)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, counter
}

func applyCalls(t *testing.T, counter string) int {
	t.Helper()
	data, err := os.ReadFile(counter)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("shim call counter %s: %v", counter, err)
	}
	return n
}

// TestShimRestoreFails: iptables-restore refusing the payload leaves the
// live rules exactly as they were, and a failure after one family was
// committed is rolled back through the real binary.
func TestShimRestoreFails(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		for _, c := range []struct {
			name   string
			failOn int
		}{
			// Every restore fails: the first commit is refused.
			{"always", 0},
			// The IPv4 commit goes through, the IPv6 one fails: the
			// rollback must restore IPv4 with the real binary (call 3).
			{"second-call", 2},
		} {
			t.Run(c.name, func(t *testing.T) {
				l := newApplyLab(t, b, applyBaseConfig)
				l.must(0, "apply", "-auto-approve")
				genA, ownedA, fullA := l.generation(), l.owned(), l.full()

				shim, counter := applyRestoreShims(t, c.failOn)
				l.setConfig(applyChangedAPIBoth())
				l.sv.Env = []string{"PATH=" + shim + string(os.PathListSeparator) + os.Getenv("PATH")}
				r := l.sv.Run(t, "apply", "-auto-approve")
				l.sv.Env = nil
				if r.Code == 0 {
					t.Fatalf("%s apply through a failing iptables-restore shim (%s) succeeded: %s", l.where(), shim, r)
				}
				if !strings.Contains(r.Stderr, "line 3") {
					t.Fatalf("%s apply through a failing shim: the error does not name the failing line 3: %s", l.where(), r)
				}
				calls := applyCalls(t, counter)
				if calls == 0 {
					t.Fatalf("%s the shim in %s was never called; svcnat did not look iptables-restore up on PATH: %s", l.where(), shim, r)
				}
				if c.failOn == 2 {
					if calls < 3 {
						t.Fatalf("%s want the IPv4 commit, the failing IPv6 commit and the IPv4 rollback to run iptables-restore, got %d calls: %s", l.where(), calls, r)
					}
					if !strings.Contains(r.Stderr, "restored") {
						t.Fatalf("%s apply does not say the owned chains were restored: %s", l.where(), r)
					}
				}
				t.Logf("%s %d iptables-restore calls; stderr: %s", l.where(), calls, strings.TrimSpace(r.Stderr))
				l.same("owned rules after a failed apply", ownedA, l.owned())
				l.same("live rules after a failed apply", fullA, l.full())
				if g := l.generation(); g != genA {
					t.Fatalf("%s a failed apply recorded generation %d, want %d", l.where(), g, genA)
				}
				if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
					t.Fatalf("%s show after a failed apply: %s", l.where(), r)
				}
				// Without the shim the same apply converges.
				l.must(0, "apply", "-auto-approve")
				l.must(0, "plan", "--detailed-exitcode")
			})
		}
	})
}

// TestLockHeld: a second apply gives up after --lock-timeout while the
// state lock is held, saying so, and changes nothing.
func TestLockHeld(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		d, err := state.Open(l.sv.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		// flock(2) locks belong to the open file: holding it here
		// blocks the svcnat process exactly as another svcnat would.
		lock, err := d.Lock(context.Background(), 0)
		if err != nil {
			t.Fatalf("%s taking the lock on %s: %v", l.where(), l.sv.StateDir, err)
		}
		t.Cleanup(func() { lock.Unlock() })
		before := l.full()
		start := time.Now()
		r := l.must(1, "apply", "-auto-approve", "--lock-timeout", "1s")
		t.Logf("%s apply gave up after %s", l.where(), time.Since(start).Round(time.Millisecond))
		if !strings.Contains(r.Stderr, "locked") || !strings.Contains(r.Stderr, l.sv.StateDir) ||
			!strings.Contains(r.Stderr, fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("%s apply with the lock held: want a message saying %s is locked by pid %d: %s",
				l.where(), l.sv.StateDir, os.Getpid(), r)
		}
		l.same("live rules after a lock timeout", before, l.full())
		if err := lock.Unlock(); err != nil {
			t.Fatal(err)
		}
		l.must(0, "apply", "-auto-approve", "--lock-timeout", "1s")
		l.must(0, "plan", "--detailed-exitcode")
	})
}

// TestSignalDuringApply: SIGTERM at a random moment of an apply leaves the
// owned rules exactly the old or the new set, never a mix, the state
// agreeing with them, and the next apply converges.
func TestSignalDuringApply(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		const services, iterations = 200, 12
		cfgs := [2]string{applyBulkConfig(services, 0), applyBulkConfig(services, 1)}
		l := newApplyLab(t, b, cfgs[0])
		l.must(0, "apply", "-auto-approve")
		var sets [2]string
		sets[0] = l.ownedFam(rules.IPv4)
		l.setConfig(cfgs[1])
		start := time.Now()
		l.must(0, "apply", "-auto-approve")
		took := time.Since(start)
		sets[1] = l.ownedFam(rules.IPv4)
		if sets[0] == sets[1] {
			t.Fatalf("%s configurations A and B render the same rules", l.where())
		}
		seed := uint64(time.Now().UnixNano())
		rng := rand.New(rand.NewPCG(seed, 0))
		t.Logf("%s an unsignalled apply of the change took %s; seed %d", l.where(), took.Round(time.Millisecond), seed)

		outcomes := map[string]int{}
		for i := range iterations {
			from, to := (i+1)%2, i%2 // live is sets[from]; apply sets[to]
			l.setConfig(cfgs[to])
			gen := l.generation()
			delay := took/4 + time.Duration(rng.Int64N(int64(took)))
			cmd := l.sv.Cmd("apply", "-auto-approve")
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGTERM) })
			waitErr := cmd.Wait()
			timer.Stop()
			how := "exit 0"
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				how = "killed by " + ws.Signal().String()
			} else if waitErr != nil {
				how = fmt.Sprintf("exit %d", cmd.ProcessState.ExitCode())
			}
			if i := strings.Index(errb.String(), "interrupted before "); i >= 0 {
				phase, _, _ := strings.Cut(errb.String()[i:], ":")
				how += ", " + phase
			}
			run := fmt.Sprintf("iteration %d (SIGTERM after %s): %s\n--- stdout\n%s--- stderr\n%s",
				i, delay.Round(time.Microsecond), how, out.String(), errb.String())

			got := l.ownedFam(rules.IPv4)
			newGen := l.generation()
			switch got {
			case sets[from]:
				if how == "exit 0" {
					t.Fatalf("%s apply exited 0 but the live rules are the old set; %s", l.where(), run)
				}
				if newGen != gen {
					t.Fatalf("%s the live rules are the old set but the state went from generation %d to %d; %s", l.where(), gen, newGen, run)
				}
				// A backup taken before an apply that was rolled back
				// holds exactly the rules it was rolled back to.
				if bk, err := os.ReadFile(filepath.Join(l.sv.StateDir, "backups", fmt.Sprintf("%d.ipv4.rules", gen+1))); err == nil {
					l.same(fmt.Sprintf("backup of generation %d and the live rules kept; %s", gen+1, run), got, string(bk))
				}
				outcomes["old set kept ("+how+")"]++
			case sets[to]:
				if newGen != gen+1 {
					t.Fatalf("%s the live rules are the new set but the state is at generation %d, want %d; %s", l.where(), newGen, gen+1, run)
				}
				outcomes["new set ("+how+")"]++
			default:
				t.Fatalf("%s after SIGTERM the owned rules are neither the old nor the new set; %s\n--- diff against the old set (- old, + live)\n%s",
					l.where(), run, applyDiff(sets[from], got))
			}
			// Whatever happened, the next apply converges.
			l.must(0, "apply", "-auto-approve")
			l.must(0, "plan", "--detailed-exitcode")
			l.same("owned rules after converging", sets[to], l.ownedFam(rules.IPv4))
		}
		t.Logf("%s outcomes: %v", l.where(), outcomes)
	})
}

// TestSignalWhilePlanning: a SIGTERM that arrives after apply took the
// lock, while it is still reading the live rules to make its plan, stops
// the apply: exit 1, nothing changed, nothing recorded. (It used to be
// swallowed by the lock's signal context, and the apply went ahead.)
func TestSignalWhilePlanning(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		l.must(0, "apply", "-auto-approve")
		genA, ownedA := l.generation(), l.owned()

		// iptables-save shims: the first call marks that svcnat is
		// planning and stalls a second; every call then runs the real one.
		shim := t.TempDir()
		marker := filepath.Join(shim, "planning")
		for _, name := range []string{"iptables-" + b + "-save", "ip6tables-" + b + "-save"} {
			real, err := exec.LookPath(name)
			if err != nil {
				t.Skipf("%s not found: %v", name, err)
			}
			script := fmt.Sprintf("#!/bin/sh\nif [ ! -e %[1]q ]; then : > %[1]q; sleep 1; fi\nexec %[2]q \"$@\"\n", marker, real)
			if err := os.WriteFile(filepath.Join(shim, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		l.setConfig(applyChangedAPIBoth())
		l.sv.Env = []string{"PATH=" + shim + string(os.PathListSeparator) + os.Getenv("PATH")}
		cmd := l.sv.Cmd("apply", "-auto-approve")
		l.sv.Env = nil
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s svcnat apply never ran the iptables-save shim in %s:\n%s%s", l.where(), shim, out.String(), errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("%s signalling svcnat apply: %v", l.where(), err)
		}
		cmd.Wait()
		r := Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
		if r.Code != 1 || !strings.Contains(r.Stderr, "interrupted") {
			t.Fatalf("%s svcnat apply, SIGTERM while it read the live rules to plan: want exit 1 saying it was interrupted, got %s", l.where(), r)
		}
		l.same("owned rules after an apply interrupted while planning", ownedA, l.owned())
		if g := l.generation(); g != genA {
			t.Fatalf("%s an interrupted apply recorded generation %d, want %d", l.where(), g, genA)
		}
	})
}

// TestRollbackDestroyShow: rollback returns to the previous generation's
// exact rules (and a second rollback back again), show reports drift in an
// owned chain, destroy leaves no owned chain or jump.
func TestRollbackDestroyShow(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyBaseConfig)
		r := l.must(1, "rollback", "-auto-approve")
		if !strings.Contains(r.Stderr, "previous generation") {
			t.Fatalf("%s rollback with no generation: want an error about the previous generation: %s", l.where(), r)
		}
		l.must(0, "apply", "-auto-approve")
		genA := l.owned()
		if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") || !strings.Contains(r.Stdout, "service default/api") {
			t.Fatalf("%s show after apply: want default/api and no drift: %s", l.where(), r)
		}
		l.setConfig(applyChangedAPIBoth())
		l.must(0, "apply", "-auto-approve")
		genB := l.owned()
		if genA == genB {
			t.Fatalf("%s the change did not change the owned rules", l.where())
		}

		l.must(0, "rollback", "-auto-approve")
		l.same("owned rules after rollback and generation 1", genA, l.owned())
		if g := l.generation(); g != 3 {
			t.Fatalf("%s rollback recorded generation %d, want 3", l.where(), g)
		}
		if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
			t.Fatalf("%s show after rollback: %s", l.where(), r)
		}
		l.must(2, "plan", "--detailed-exitcode") // the configuration is still B
		l.must(0, "rollback", "-auto-approve")
		l.same("owned rules after a second rollback and generation 2", genB, l.owned())
		l.must(0, "plan", "--detailed-exitcode")

		// Drift: someone adds a rule to an owned chain.
		l.ipt(rules.IPv4, "-t", "nat", "-A", applyPrefix+"-SERVICES", "-s", "1.2.3.4", "-j", "RETURN")
		r = l.must(0, "show")
		if strings.Contains(r.Stdout, "No drift") || !strings.Contains(r.Stdout, "Drift") || !strings.Contains(r.Stdout, "1.2.3.4") {
			t.Fatalf("%s show does not report the 1.2.3.4 rule added to %s-SERVICES as drift: %s", l.where(), applyPrefix, r)
		}
		r = l.must(2, "plan", "--detailed-exitcode")
		if !strings.Contains(r.Stdout, "1.2.3.4") {
			t.Fatalf("%s plan does not show the drift as a change: %s", l.where(), r)
		}

		l.must(0, "destroy", "-auto-approve")
		for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
			if s := l.save(fam); strings.Contains(s, applyPrefix+"-") {
				t.Fatalf("%s %s rules still name an svcnat chain after destroy:\n%s", l.where(), fam, s)
			}
		}
		l.must(2, "plan", "--detailed-exitcode")
		if r := l.must(0, "destroy", "-auto-approve"); !strings.Contains(r.Stdout, "No changes") {
			t.Fatalf("%s a second destroy should have nothing to do: %s", l.where(), r)
		}
	})
}

// TestBackendAuto: --backend auto writes where rules already are (nft when
// there are none) and refuses a namespace with svcnat chains in both.
func TestBackendAuto(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, seed, want string
	}{
		{"legacy-rules", "legacy", "legacy"},
		{"nft-rules", "nft", "nft"},
		{"empty", "", "nft"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newApplyLab(t, "auto", applyBaseConfig)
			if c.seed != "" {
				applyIPT(t, l.ns, c.seed, rules.IPv4, "-t", "filter", "-A", "INPUT", "-j", "ACCEPT")
			}
			r := l.must(2, "plan", "--json", "--detailed-exitcode")
			var p applyPlanJSON
			if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
				t.Fatalf("%s plan --json: %v: %s", l.where(), err, r)
			}
			if p.Backend != c.want {
				t.Fatalf("%s auto chose %q, want %q: %s", l.where(), p.Backend, c.want, r)
			}
			l.must(0, "apply", "-auto-approve")
			other := map[string]string{"nft": "legacy", "legacy": "nft"}[c.want]
			for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
				if s := applySave(t, l.ns, other, fam); strings.Contains(s, applyPrefix+"-") {
					t.Fatalf("%s auto should have written to %s, but %s %s holds svcnat chains:\n%s", l.where(), c.want, other, fam, s)
				}
			}
			if s := applySave(t, l.ns, c.want, rules.IPv4); !strings.Contains(s, ":"+applyPrefix+"-SERVICES") {
				t.Fatalf("%s auto apply wrote no %s-SERVICES to %s:\n%s", l.where(), applyPrefix, c.want, s)
			}
			// svcnat's own chains keep it on that backend.
			l.must(0, "plan", "--detailed-exitcode")
		})
	}
	t.Run("both-backends", func(t *testing.T) {
		t.Parallel()
		l := newApplyLab(t, "auto", applyBaseConfig)
		l.sv.Backend = "nft"
		l.must(0, "apply", "-auto-approve")
		// svcnat will not write a second set itself: an explicit
		// --backend naming the other backend is refused.
		l.sv.Backend = "legacy"
		if r := l.must(1, "apply", "-auto-approve"); !strings.Contains(r.Stderr, "other backend") {
			t.Fatalf("%s apply --backend legacy over svcnat chains in nft: want a refusal naming the other backend: %s", l.where(), r)
		}
		// Someone else does: the rendered rules loaded into legacy by hand.
		payload := l.must(0, "render").Stdout
		v4, v6, _ := strings.Cut(payload, "# IPv6")
		l.ns.MustExec(t, v4, "iptables-legacy-restore", "--noflush")
		if v6 != "" {
			l.ns.MustExec(t, "# IPv6"+v6, "ip6tables-legacy-restore", "--noflush")
		}
		l.sv.Backend = "auto"
		before := map[string]string{}
		for _, b := range applyBackends {
			before[b] = applyNormalize(applySave(t, l.ns, b, rules.IPv4), false) + applyNormalize(applySave(t, l.ns, b, rules.IPv6), false)
		}
		for _, cmd := range [][]string{{"plan", "--detailed-exitcode"}, {"apply", "-auto-approve"}} {
			r := l.must(1, cmd...)
			if !strings.Contains(r.Stderr, "both") || !strings.Contains(r.Stderr, "nft") || !strings.Contains(r.Stderr, "legacy") {
				t.Fatalf("%s %s with svcnat chains in both backends: want an error naming both backends: %s", l.where(), cmd[0], r)
			}
		}
		for _, b := range applyBackends {
			after := applyNormalize(applySave(t, l.ns, b, rules.IPv4), false) + applyNormalize(applySave(t, l.ns, b, rules.IPv6), false)
			if after != before[b] {
				t.Fatalf("%s a refused apply changed the %s rules:\n%s", l.where(), b, applyDiff(before[b], after))
			}
		}
	})
}
