package integration

// Real-kernel tests of what svcnat may take as its own: chains of its
// prefix that another program wrote, and a namespace another state
// directory writes. On both backends.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// ownCNIRules is what the CNI portmap plugin writes in nat.
const ownCNIRules = `*nat
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-SNAT - [0:0]
:CNI-DN-6f2b8c1e2a0b4d5e9a7c1 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-SNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: podman" -m multiport --dports 8080 -j CNI-DN-6f2b8c1e2a0b4d5e9a7c1
-A CNI-DN-6f2b8c1e2a0b4d5e9a7c1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
COMMIT
`

// TestAnotherProgramsChainsStay: chain_prefix CNI where the CNI plugins
// wrote CNI-* chains: apply, plan and destroy refuse naming them, and the
// kernel's rules stay byte for byte what they were; --adopt takes them.
func TestAnotherProgramsChainsStay(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, strings.Replace(applyIPv4Config, "settings {", "settings {\n  chain_prefix  = \"CNI\"", 1))
		l.ns.MustExec(t, ownCNIRules, "iptables-"+b+"-restore", "--noflush")
		before := l.save(backend.IPv4) + l.save(backend.IPv6)
		for _, args := range [][]string{{"apply", "-auto-approve"}, {"plan"}, {"destroy", "-auto-approve"}} {
			r := l.must(1, args...)
			if !strings.Contains(r.Stderr, "CNI-* chains that "+l.sv.StateDir+" did not record are in the kernel") ||
				!strings.Contains(r.Stderr, "\n  IPv4 nat CNI-HOSTPORT-DNAT\n") || !strings.Contains(r.Stderr, "--adopt") {
				t.Fatalf("%s svcnat %s over CNI's chains: want a refusal naming them: %s", l.where(), args[0], r)
			}
			l.same("iptables-save after a refused "+args[0], stripCounters(before), stripCounters(l.save(backend.IPv4)+l.save(backend.IPv6)))
		}
		l.must(0, "apply", "--adopt", "-auto-approve")
		if save := l.save(backend.IPv4); strings.Contains(save, "CNI-HOSTPORT-DNAT") || !strings.Contains(save, ":CNI-SERVICES") {
			t.Fatalf("%s apply --adopt did not take the chains over:\n%s", l.where(), save)
		}
		l.must(0, "destroy", "-auto-approve")
	})
}

// stripCounters drops iptables-save's comment lines (they hold the time)
// and chain counters: the rest is the rules, byte for byte.
func stripCounters(save string) string {
	var out []string
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, ":") {
			if i := strings.LastIndex(line, " ["); i > 0 {
				line = line[:i]
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// TestConcurrentStateDirsOneNamespace: ten applies of ten configurations
// with ten state directories on one namespace at once are serialised: the
// first wins, the nine others are refused naming its state directory, and
// the live rules are exactly its configuration's.
func TestConcurrentStateDirsOneNamespace(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, applyIPv4Config)
		const n = 10
		runners := make([]*Svcnat, n)
		results := make([]Result, n)
		for i := range runners {
			cfg := strings.Replace(applyIPv4Config, "10.32.0.61", fmt.Sprintf("10.32.0.%d", 100+i), 1)
			runners[i] = NewSvcnat(t, l.ns.Name, writeConfig(t, map[string]string{"services.hcl": cfg}), b)
		}
		var wg sync.WaitGroup
		for i, sv := range runners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = sv.Run(t, "apply", "-auto-approve", "--lock-timeout", "90s")
			}()
		}
		wg.Wait()
		winner := slices.IndexFunc(results, func(r Result) bool { return r.Code == 0 })
		if winner < 0 {
			t.Fatalf("%s no apply succeeded: %v", l.where(), results)
		}
		for i, r := range results {
			if i != winner && (r.Code != 1 || !strings.Contains(r.Stderr, "written by svcnat with state directory "+runners[winner].StateDir+",")) {
				t.Errorf("%s apply %d: want a refusal naming %s: %s", l.where(), i, runners[winner].StateDir, r)
			}
		}
		if r := runners[winner].MustRun(t, 0, "plan", "--detailed-exitcode"); !strings.Contains(r.Stdout, "No changes") {
			t.Fatalf("%s the live rules are not apply %d's configuration: %s", l.where(), winner, r)
		}
		runners[winner].MustRun(t, 0, "destroy", "-auto-approve")
	})
}

// kubeProxyRules is what kube-proxy keeps where it runs: its canary in
// mangle, nat and filter, and its chains.
const kubeProxyRules = `*mangle
:KUBE-PROXY-CANARY - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
*filter
:KUBE-PROXY-CANARY - [0:0]
COMMIT
`

// TestKubeProxysChainsAreNeverTaken: chain_prefix KUBE where kube-proxy
// runs: apply, plan and destroy refuse naming kube-proxy, --adopt too,
// without offering --adopt, and the kernel's rules stay byte for byte;
// mangle's chains of the prefix, which svcnat never writes, stay too when
// kube-proxy is gone from nat and filter and --adopt takes those.
func TestKubeProxysChainsAreNeverTaken(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		l := newApplyLab(t, b, strings.Replace(applyIPv4Config, "settings {", "settings {\n  chain_prefix  = \"KUBE\"", 1))
		l.ns.MustExec(t, kubeProxyRules, "iptables-"+b+"-restore", "--noflush")
		before := l.save(backend.IPv4) + l.save(backend.IPv6)
		for _, args := range [][]string{{"apply", "-auto-approve"}, {"apply", "--adopt", "-auto-approve"}, {"plan", "--adopt"}, {"destroy", "--adopt", "-auto-approve"}} {
			r := l.must(1, args...)
			if !strings.Contains(r.Stderr, "kube-proxy runs in this network namespace") || strings.Contains(r.Stderr, "--adopt") {
				t.Fatalf("%s svcnat %s over kube-proxy's chains: want a refusal naming kube-proxy, without --adopt: %s", l.where(), strings.Join(args, " "), r)
			}
			l.same("iptables-save after a refused "+args[0], stripCounters(before), stripCounters(l.save(backend.IPv4)+l.save(backend.IPv6)))
		}
		// kube-proxy is gone from nat and filter; mangle's chains of the
		// prefix are still someone's, and never svcnat's.
		l.ns.MustExec(t, "", "iptables-"+b, "-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")
		for _, c := range [][]string{{"nat", "KUBE-SERVICES"}, {"nat", "KUBE-PROXY-CANARY"}, {"filter", "KUBE-PROXY-CANARY"}, {"mangle", "KUBE-PROXY-CANARY"}} {
			l.ns.MustExec(t, "", "iptables-"+b, "-t", c[0], "-X", c[1])
		}
		mangle := l.ns.MustExec(t, "", "iptables-"+b+"-save", "-t", "mangle")
		l.must(0, "apply", "--adopt", "-auto-approve")
		l.must(0, "destroy", "-auto-approve")
		if after := l.ns.MustExec(t, "", "iptables-"+b+"-save", "-t", "mangle"); stripCounters(after) != stripCounters(mangle) || !strings.Contains(after, ":KUBE-KUBELET-CANARY") {
			t.Fatalf("%s mangle changed:\n%s\nwas\n%s", l.where(), after, mangle)
		}
	})
}
