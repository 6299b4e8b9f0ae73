package conntrack

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// entry is a conntrack entry of a client talking to dst:port, DNATed to
// ep:epPort.
func entry(proto uint8, client, dst string, port uint16, ep string, epPort uint16) *netlink.ConntrackFlow {
	return &netlink.ConntrackFlow{
		Forward: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(client), DstIP: net.ParseIP(dst), SrcPort: 40000, DstPort: port},
		Reverse: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(ep), DstIP: net.ParseIP(client), SrcPort: epPort, DstPort: 40000},
	}
}

// The filters select what `conntrack -D -p udp --orig-dst VIP
// --orig-port-dst PORT --dst-nat EP` would, and nothing else.
func TestFilter(t *testing.T) {
	udp, tcp := uint8(unix.IPPROTO_UDP), uint8(unix.IPPROTO_TCP)
	vip := Flow{Protocol: "udp", OrigDst: netip.MustParseAddr("10.32.0.10"), OrigPort: 53, DNAT: netip.MustParseAddr("10.64.1.2")}
	nodePort := Flow{Protocol: "udp", OrigPort: 30053, DNAT: netip.MustParseAddr("fd00:64:1::2")}
	for _, c := range []struct {
		f     Flow
		entry *netlink.ConntrackFlow
		match bool
	}{
		{vip, entry(udp, "192.0.2.2", "10.32.0.10", 53, "10.64.1.2", 5353), true},
		{vip, entry(udp, "192.0.2.2", "10.32.0.10", 53, "10.64.2.2", 5353), false}, // another endpoint
		{vip, entry(udp, "192.0.2.2", "10.32.0.11", 53, "10.64.1.2", 5353), false}, // another VIP
		{vip, entry(udp, "192.0.2.2", "10.32.0.10", 54, "10.64.1.2", 5353), false}, // another port
		{vip, entry(tcp, "192.0.2.2", "10.32.0.10", 53, "10.64.1.2", 5353), false}, // TCP
		{nodePort, entry(udp, "2001:db8::2", "2001:db8::1", 30053, "fd00:64:1::2", 53), true},
		{nodePort, entry(udp, "2001:db8::2", "2001:db8::9", 30053, "fd00:64:1::2", 53), true}, // any node address
	} {
		flt, fam, err := Filter(c.f)
		if err != nil {
			t.Fatal(err)
		}
		want := netlink.InetFamily(unix.AF_INET)
		if c.f.IPv6() {
			want = unix.AF_INET6
		}
		if fam != want {
			t.Errorf("%s: family %d, want %d", c.f, fam, want)
		}
		if got := flt.MatchConntrackFlow(c.entry); got != c.match {
			t.Errorf("%s matches %s: %v, want %v (family %d)", c.f, c.entry, got, c.match, fam)
		}
	}
	if _, _, err := Filter(Flow{Protocol: "icmp"}); err == nil {
		t.Fatal("an unknown protocol makes a filter")
	}
}
