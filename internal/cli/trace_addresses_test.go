package cli

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// The node-port warning names the addresses it compared the destination
// with, wherever they came from, and suggests --local-address only when
// it was not given.
func TestTraceNodePortWarningNamesTheAddresses(t *testing.T) {
	p := backend.Packet{Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("203.0.113.9"), Proto: "tcp", DPort: 30080, Origin: backend.OriginExternal}
	local := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	ns := traced{Tracer: kernel.Tracer("", nil, local, "SVCNAT"), Local: local, NodePorts: map[string]bool{"tcp/30080": true}, Addresses: "the addresses of namespace blue"}
	var w bytes.Buffer
	ns.warn(&w, p, &backend.Result{})
	if want := "svcnat: warning: 30080 is a node port, but 203.0.113.9 is not one of the addresses of namespace blue (10.0.0.1, fd00::1), so its rules (-m addrtype --dst-type LOCAL) do not match; give the node's addresses with --local-address\n"; w.String() != want {
		t.Errorf("--netns:\n%s\nwant\n%s", w.String(), want)
	}
	// A namespace whose addresses cannot be read is said to be one.
	w.Reset()
	ns.Local, ns.AddrErr = nil, errors.New("no such network namespace")
	ns.warn(&w, p, &backend.Result{})
	if want := "svcnat: warning: reading the addresses of namespace blue: no such network namespace; the trace takes the node to have none\n"; !strings.HasPrefix(w.String(), want) {
		t.Errorf("--netns unreadable:\n%s\nwant it to begin\n%s", w.String(), want)
	}

	h := newFakeHost(t)
	writeFile(t, h.config, "np.hcl", nodePortTCP)
	_, errs, code := h.run("trace", "--src", "192.0.2.9", "--dst", "203.0.113.78", "--dport", "30080", "--local-address", "203.0.113.77")
	if want := "svcnat: warning: 30080 is a node port, but 203.0.113.78 is not one of the --local-address addresses (203.0.113.77), so its rules (-m addrtype --dst-type LOCAL) do not match; trace one of them, or give 203.0.113.78 with --local-address too if it is the node's\n"; code != ExitOK || errs != want {
		t.Errorf("--local-address:\n%s\nwant\n%s", errs, want)
	}
	// The README quotes it, wrapped, for the examples.
	_, errs, _ = run(t, "trace", "-c", "../../examples", "--src", "192.0.2.2", "--dst", "192.0.2.9", "--dport", "30080", "--local-address", "192.0.2.1")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if said := strings.TrimSpace(errs); said == "" || !strings.Contains(strings.ReplaceAll(string(readme), "\n", " "), "`"+said+"`") {
		t.Errorf("README does not quote the warning trace prints:\n%s", errs)
	}
}

// Address errors are reported, never dropped: a planned trace whose rules
// depend on the node's addresses (node_port_addresses) fails as plan and
// render do, one whose rules do not says it takes the node to have none,
// and a live trace fails when it cannot read them.
func TestTraceReportsAddressErrors(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.config, "np.hcl", nodePortTCP)
	question := []string{"trace", "--src", "192.0.2.9", "--dst", "192.0.2.1", "--dport", "30080"}

	out, errs, code := h.run(append(question, "--netns", "no-such-ns")...)
	if want := "svcnat: warning: reading the addresses of namespace no-such-ns: "; code != ExitOK || !strings.HasPrefix(errs, want) || !strings.Contains(out, "verdict: ") {
		t.Errorf("no node_port_addresses: exit %d, stderr\n%s\nwant it to begin %q", code, errs, want)
	}

	writeFile(t, h.config, "settings.hcl", "settings {\n  node_port_addresses = [\"192.0.2.0/24\"]\n}\n")
	for _, cmd := range [][]string{question, {"graph"}, {"render"}} {
		out, errs, code := h.run(append(cmd, "--netns", "no-such-ns")...)
		if want := "svcnat: error: listing local addresses for node_port_addresses: "; code != ExitError || out != "" || !strings.HasPrefix(errs, want) {
			t.Errorf("%s with node_port_addresses: exit %d, stdout %q, stderr\n%s\nwant it to begin %q", cmd[0], code, out, errs, want)
		}
	}

	env := h.env(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	env.OpenHost = func(o engine.HostOptions) (*engine.Host, error) {
		return &engine.Host{Kernel: h.fake, Addresses: func() ([]netip.Addr, error) { return nil, errors.New("netlink: no reply") }}, nil
	}
	var stdout, stderr bytes.Buffer
	env.Stdout, env.Stderr = &stdout, &stderr
	code = Run(env, append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, append(question, "--live")...))
	if want := "svcnat: warning: reading this machine's addresses: netlink: no reply; the trace takes the node to have none\n"; code != ExitOK || !strings.Contains(stdout.String(), "verdict: ") || !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("--live: exit %d, stdout %q, stderr\n%s\nwant\n%s", code, stdout.String(), stderr.String(), want)
	}
}
