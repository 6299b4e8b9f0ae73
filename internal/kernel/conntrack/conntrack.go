// Package conntrack deletes conntrack entries over netlink (as kube-proxy
// does), inside a named network namespace when given: no conntrack binary
// is needed at run time. It takes plain values (which flows to delete) and
// decides nothing: the backend's Describer.StaleUDP says which flows are
// stale, the engine asks for their deletion.
package conntrack

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// Flow selects conntrack entries by their original destination and the
// address they were DNATed to.
type Flow struct {
	Protocol string     // "udp", "tcp" or "sctp"
	OrigDst  netip.Addr // the original destination; the zero Addr for any (a node port on every address)
	OrigPort int        // the original destination port
	DNAT     netip.Addr // the address the entries were DNATed to
}

// IPv6 reports whether the flow is an IPv6 one.
func (f Flow) IPv6() bool { return f.DNAT.Unmap().Is6() }

func (f Flow) String() string {
	dst := "*"
	if f.OrigDst.IsValid() {
		dst = f.OrigDst.String()
	}
	return fmt.Sprintf("%s %s -> %s", f.Protocol, net.JoinHostPort(dst, fmt.Sprint(f.OrigPort)), f.DNAT)
}

var protocols = map[string]uint8{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}

// Filter is the netlink filter that selects f's entries, as `conntrack -D
// -p PROTO --orig-dst IP --orig-port-dst PORT --dst-nat DNAT` does: the
// original destination (any address when OrigDst is unset) and port, and
// the reply's source, which is the address the entry was DNATed to.
func Filter(f Flow) (*netlink.ConntrackFilter, netlink.InetFamily, error) {
	proto, ok := protocols[f.Protocol]
	if !ok {
		return nil, 0, fmt.Errorf("conntrack: unknown protocol %q", f.Protocol)
	}
	fam := netlink.InetFamily(unix.AF_INET)
	if f.IPv6() {
		fam = unix.AF_INET6
	}
	var flt netlink.ConntrackFilter
	// A port filter needs the protocol set first.
	err := flt.AddProtocol(proto)
	if err == nil {
		err = flt.AddPort(netlink.ConntrackOrigDstPort, uint16(f.OrigPort))
	}
	if err == nil && f.OrigDst.IsValid() {
		err = flt.AddIP(netlink.ConntrackOrigDstIP, net.IP(f.OrigDst.Unmap().AsSlice()))
	}
	if err == nil {
		err = flt.AddIP(netlink.ConntrackReplySrcIP, net.IP(f.DNAT.Unmap().AsSlice()))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("conntrack filter for %s: %w", f, err)
	}
	return &flt, fam, nil
}

// Netlink deletes entries over netlink in a network namespace ("" for
// svcnat's own).
type Netlink struct {
	NetNS string
}

// Delete deletes the entries of every flow and returns how many flows had
// entries.
func (n Netlink) Delete(flows []Flow) (int, error) {
	if len(flows) == 0 {
		return 0, nil
	}
	deleted := 0
	err := netns.Do(n.NetNS, func() error {
		// The socket belongs to the namespace it was opened in.
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		defer h.Close()
		for _, f := range flows {
			flt, fam, err := Filter(f)
			if err != nil {
				return err
			}
			k, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, flt)
			if err != nil {
				return fmt.Errorf("deleting the conntrack entries of %s: %w", f, err)
			}
			if k > 0 {
				deleted++
			}
		}
		return nil
	})
	return deleted, err
}
