//go:build linux

package integration

import (
	"net/netip"
	"testing"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/daemon/healthcheck"
)

// A health-check node port listens where node_port_addresses says, as
// kube-proxy's does: on the node's address inside it, not on the node's
// other address on the same veth, nor on 127.0.0.1.
func TestHealthCheckNodePortAddresses(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, netlab.Options{HTTPPorts: []int{}, UDPPorts: []int{}})
	other := netip.MustParseAddr("203.0.113.9")
	lab.Node.AddAddr(t, lab.Client.NodeLink, other.String()+"/24")
	s := &healthcheck.Server{NetNS: lab.Node.Name}
	t.Cleanup(s.Close)
	const port = 30500
	svc := healthcheck.Service{Namespace: "default", Name: "local", Port: port, LocalEndpoints: 1,
		NodePortAddresses: []netip.Prefix{lab.Client.Prefix4}}
	if err := s.Sync([]healthcheck.Service{svc}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Client.HTTPGet("http://" + netlab.HostPort(lab.Client.NodeIP4, port) + "/"); err != nil {
		t.Fatalf("on %v, inside node_port_addresses %v: %v", lab.Client.NodeIP4, lab.Client.Prefix4, err)
	}
	for _, c := range []struct {
		from netlab.NS
		addr netip.Addr
	}{{lab.Client.NS, other}, {lab.Node, netip.MustParseAddr("127.0.0.1")}} {
		if _, err := c.from.HTTPGet("http://" + netlab.HostPort(c.addr, port) + "/"); !netlab.IsRefused(err) {
			t.Errorf("on %v, outside node_port_addresses: want refused, got %v", c.addr, err)
		}
	}

	// Without node_port_addresses: every address, as before.
	svc.NodePortAddresses = nil
	if err := s.Sync([]healthcheck.Service{svc}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Client.HTTPGet("http://" + netlab.HostPort(other, port) + "/"); err != nil {
		t.Fatalf("on %v without node_port_addresses: %v", other, err)
	}
}
