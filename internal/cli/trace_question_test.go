package cli

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/netns"
)

const dnsUDP = `service "kube-system/dns" {
  cluster_ips = ["10.32.0.10"]
  port {
    protocol = "UDP"
    port     = 53
  }
  endpoint {
    address = "10.64.1.2"
  }
}
`

const nodePortTCP = `service "default/np" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.62"]
  port {
    port      = 80
    node_port = 30080
  }
  endpoint {
    address = "10.64.1.3"
  }
}
`

// A trace whose question looks wrong still prints its paths, and says on
// stderr what it guessed and what was probably meant.
func TestTraceSaysWhenTheQuestionLooksWrong(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.config, "dns.hcl", dnsUDP)
	writeFile(t, h.config, "np.hcl", nodePortTCP)
	trace := func(args ...string) (string, string) {
		t.Helper()
		out, errs, code := h.run(append([]string{"trace", "--src", "192.0.2.9"}, args...)...)
		if code != ExitOK || !strings.Contains(out, "verdict: ") {
			t.Fatalf("trace %v: exit %d\n%s%s", args, code, out, errs)
		}
		return out, errs
	}

	// A UDP service traced as TCP (the default) looks like no service.
	_, errs := trace("--dst", "10.32.0.10", "--dport", "53", "--local-address", "192.0.2.1")
	if want := "svcnat: warning: svcnat serves 10.32.0.10:53 as udp only, not tcp; trace it with --proto udp\n"; errs != want {
		t.Errorf("UDP service traced as TCP: stderr\n%s\nwant\n%s", errs, want)
	}
	if _, errs := trace("--dst", "10.32.0.10", "--dport", "53", "--proto", "udp", "--local-address", "192.0.2.1"); errs != "" {
		t.Errorf("UDP service traced as UDP: stderr %q, want none", errs)
	}
	// Nothing on that port at all: nothing to suggest.
	if _, errs := trace("--dst", "10.32.0.10", "--dport", "54", "--local-address", "192.0.2.1"); errs != "" {
		t.Errorf("no service: stderr %q, want none", errs)
	}

	// Without --local-address, the node's addresses are this machine's:
	// trace says which, and that a node port traced to another address
	// cannot match.
	mine, err := netns.InterfaceAddrs("")
	if err != nil {
		t.Skipf("this machine's addresses: %v", err)
	}
	_, errs = trace("--dst", "203.0.113.77", "--dport", "30080")
	for _, want := range []string{
		"svcnat: the node's addresses are this machine's: " + joinAddrs(mine) + " (--local-address gives another node's)\n",
		"svcnat: warning: 30080 is a node port, but 203.0.113.77 is not one of this machine's addresses, so its rules (-m addrtype --dst-type LOCAL) do not match; give the node's addresses with --local-address\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("node port without --local-address: stderr lacks\n%s\ngot\n%s", want, errs)
		}
	}
	// Given, and the destination among them: nothing to say.
	out, errs := trace("--dst", "203.0.113.77", "--dport", "30080", "--local-address", "203.0.113.77")
	if errs != "" || !strings.Contains(out, "DNAT to 10.64.1.3:80") {
		t.Errorf("node port to a --local-address: stderr %q\n%s", errs, out)
	}
	// A loopback address is the host's, as the kernel's addrtype sees it.
	if _, errs := trace("--dst", "127.0.0.1", "--dport", "30080", "--origin", "local", "--local-address", "203.0.113.77"); errs != "" {
		t.Errorf("node port on 127.0.0.1: stderr %q, want none", errs)
	}
	if _, errs := trace("--dst", "203.0.113.78", "--dport", "30080", "--local-address", "203.0.113.77"); !strings.Contains(errs,
		"svcnat: warning: 30080 is a node port, but 203.0.113.78 is not one of the --local-address addresses") {
		t.Errorf("node port to another address than --local-address's: stderr %q", errs)
	}
}
