package cli

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/trace"
)

// The node-port warning names the addresses it compared the destination
// with, wherever they came from, and suggests --local-address only when
// it was not given.
func TestTraceNodePortWarningNamesTheAddresses(t *testing.T) {
	p := trace.Packet{Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("203.0.113.9"), Proto: "tcp", DPort: 30080, Origin: trace.External}
	local := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	ns := traced{Host: trace.Host{Local: local}, NodePorts: map[string]bool{"tcp/30080": true}, Addresses: "the addresses of namespace blue"}
	var w bytes.Buffer
	ns.warn(&w, p, &trace.Result{})
	if want := "svcnat: warning: 30080 is a node port, but 203.0.113.9 is not one of the addresses of namespace blue (10.0.0.1, fd00::1), so its rules (-m addrtype --dst-type LOCAL) do not match; give the node's addresses with --local-address\n"; w.String() != want {
		t.Errorf("--netns:\n%s\nwant\n%s", w.String(), want)
	}
	// A namespace whose addresses cannot be read is said to be one.
	w.Reset()
	ns.Local, ns.AddrErr = nil, errors.New("no such network namespace")
	ns.warn(&w, p, &trace.Result{})
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
