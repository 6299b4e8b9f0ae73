package cli

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// cniChains is what the CNI portmap plugin leaves in nat.
const cniChains = "*nat\n:CNI-HOSTPORT-DNAT - [0:0]\n:CNI-DN-1234 - [0:0]\n" +
	"-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n" +
	"-A CNI-HOSTPORT-DNAT -p tcp -m tcp --dport 8080 -j CNI-DN-1234\n" +
	"-A CNI-DN-1234 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80\nCOMMIT\n"

// chain_prefix CNI where the CNI plugins wrote CNI-* chains: plan and
// apply refuse naming them, destroy too; --adopt takes them over.
func TestPlanAndApplyRefuseAnotherProgramsChains(t *testing.T) {
	h := newFakeHost(t)
	if err := h.fake.Restore(backend.IPv4, []byte(cniChains), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"CNI\"\n}\n")
	says := "CNI-* chains that " + h.stateDir + " did not record are in the kernel, and this apply would change or delete them; nothing was changed:\n  IPv4 nat CNI-DN-1234\n  IPv4 nat CNI-HOSTPORT-DNAT"
	refusedLikeApply(t, h, "unrecorded_chains", says, "if another program wrote them, choose another chain_prefix; if svcnat did (with a state directory that is lost), run again with --adopt")
	before := h.rules()
	if _, errs, code := h.run("destroy", "-auto-approve"); code != ExitError || !strings.Contains(errs, "this destroy would change or delete them") || h.rules() != before {
		t.Fatalf("destroy: exit %d\n%s", code, errs)
	}
	h.must(ExitOK, "plan", "--adopt")
	h.must(ExitOK, "apply", "--adopt", "-auto-approve")
	if strings.Contains(h.rules(), "CNI-HOSTPORT-DNAT") || h.generation() != 1 {
		t.Fatalf("apply --adopt left the chains:\n%s", h.rules())
	}
}

// A second state directory on the namespace another one wrote is refused,
// naming the other, by plan and apply.
func TestSecondStateDirIsRefused(t *testing.T) {
	h := newFakeHost(t)
	h.runtimeDir = t.TempDir()
	first := h.stateDir
	h.must(ExitOK, "apply", "-auto-approve")
	h.stateDir = t.TempDir()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	refusedLikeApply(t, h, "other_state_dir",
		"the SVCNAT-* chains in this network namespace were written by svcnat with state directory "+first+", not "+h.stateDir,
		"use --state-dir "+first+", or run svcnat destroy --state-dir "+first+" first")
}

// TestAdoptSaysItAdopted: after the state directory that wrote the
// chains is deleted, apply --adopt with a new one takes them over and
// says so, whether the rules already match or change.
func TestAdoptSaysItAdopted(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	n := strings.Count(h.rules(), ":SVCNAT-")
	h.stateDir = t.TempDir()
	out, errs, code := h.run("apply", "--adopt", "-auto-approve")
	if code != ExitOK || !strings.Contains(out, "Adopted "+plural(n, "chain")) || strings.Contains(out, "an earlier apply stopped") ||
		!strings.Contains(out, "generation 1 recorded") {
		t.Fatalf("apply --adopt of matching rules: exit %d\n%s%s", code, out, errs)
	}
	h.stateDir = t.TempDir()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	out, errs, code = h.run("apply", "--adopt", "-auto-approve")
	if code != ExitOK || !strings.Contains(out, "Apply complete!") || !strings.Contains(out, "adopted "+plural(n, "chain")) {
		t.Fatalf("apply --adopt with changes: exit %d\n%s%s", code, out, errs)
	}
}

// chain_prefix KUBE where kube-proxy runs: plan and apply refuse naming
// kube-proxy, plan --json with the reason kube_proxy, and the hint offers
// another prefix, never --adopt.
func TestKubeProxyIsRefused(t *testing.T) {
	h := newFakeHost(t)
	if err := h.fake.Restore(backend.IPv4, []byte("*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.config, "settings.hcl", "settings {\n  chain_prefix = \"KUBE\"\n}\n")
	hint := `give svcnat a chain prefix of its own (chain_prefix in the settings block; the default is "SVCNAT")`
	refusedLikeApply(t, h, "kube_proxy", "kube-proxy runs in this network namespace (IPv4 mangle KUBE-PROXY-CANARY): its KUBE-* chains are never svcnat's, and svcnat with chain_prefix KUBE would fight it over them; nothing was changed", hint)
	if _, errs, code := h.run("apply", "--adopt", "-auto-approve"); code != ExitError || !strings.Contains(errs, "kube-proxy runs") || strings.Contains(errs, "--adopt") {
		t.Fatalf("apply --adopt: exit %d\n%s", code, errs)
	}
}
