package conntrack

import (
	"net/netip"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		f    Flow
		want string
	}{
		{Flow{Protocol: "udp", OrigDst: netip.MustParseAddr("10.32.0.10"), OrigPort: 53, DNAT: netip.MustParseAddr("10.64.1.2")},
			"-D -f ipv4 -p udp --orig-dst 10.32.0.10 --orig-port-dst 53 --dst-nat 10.64.1.2"},
		{Flow{Protocol: "udp", OrigPort: 30053, DNAT: netip.MustParseAddr("fd00:64:1::2")},
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
