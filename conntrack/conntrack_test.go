package conntrack

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		f    planner.StaleFlow
		want string
	}{
		{planner.StaleFlow{Family: rules.IPv4, VIP: "10.32.0.10", Port: 53, Endpoint: "10.64.1.2"},
			"-D -f ipv4 -p udp --orig-dst 10.32.0.10 --orig-port-dst 53 --dst-nat 10.64.1.2"},
		{planner.StaleFlow{Family: rules.IPv6, NodePort: 30053, Endpoint: "fd00:64:1::2"},
			"-D -f ipv6 -p udp --orig-port-dst 30053 --dst-nat fd00:64:1::2"},
	} {
		if got := strings.Join(Args(c.f), " "); got != c.want {
			t.Errorf("Args(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
	if !nothingDeleted("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n") || nothingDeleted("conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters") {
		t.Fatal("nothingDeleted misreads conntrack's report")
	}
}
