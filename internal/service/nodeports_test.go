package service

import (
	"fmt"
	"net/netip"
	"testing"
)

// node_port_addresses for one family: the family's CIDRs, or every
// address when it names none of the family or one of length zero; the
// node's addresses inside them, each once, sorted.
func TestNodePorts(t *testing.T) {
	p := func(s ...string) (out []netip.Prefix) {
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	local := []netip.Addr{netip.MustParseAddr("::ffff:192.168.0.9"), netip.MustParseAddr("192.168.0.2"),
		netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.168.0.2")}
	for _, c := range []struct {
		ipv6             bool
		cidrs            []netip.Prefix
		matchAll, cidrsW string
		ips              string
	}{
		{false, nil, "true", "[0.0.0.0/0]", ""},
		{true, p("192.168.0.0/24"), "true", "[::/0]", ""},
		{false, p("192.168.0.7/24", "2001:db8::/64"), "false", "[192.168.0.0/24]", "[192.168.0.2 192.168.0.9]"},
		{false, p("10.0.0.0/8", "0.0.0.0/0"), "true", "[0.0.0.0/0]", ""},
		{true, p("2001:db8::/64"), "false", "[2001:db8::/64]", "[2001:db8::1]"},
	} {
		n := NodePorts(c.ipv6, c.cidrs)
		if fmt.Sprint(n.MatchAll) != c.matchAll || fmt.Sprint(n.CIDRs) != c.cidrsW {
			t.Errorf("NodePorts(%v, %v) = %v %v; want %s %s", c.ipv6, c.cidrs, n.MatchAll, n.CIDRs, c.matchAll, c.cidrsW)
		}
		if !n.MatchAll {
			if got := fmt.Sprint(n.NodeIPs(local)); got != c.ips {
				t.Errorf("NodeIPs of %v = %s; want %s", n.CIDRs, got, c.ips)
			}
		}
	}
}
