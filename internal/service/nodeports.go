package service

import (
	"net/netip"
	"slices"
)

// NodePortAddresses is kube-proxy's NodePortAddresses for one IP family:
// which of the node's addresses its node ports answer on, decided once for
// every backend's renderer from node_port_addresses.
type NodePortAddresses struct {
	// MatchAll: every address of the family, when node_port_addresses
	// names no CIDR of it or one of length zero; CIDRs is then that one
	// zero-length prefix.
	MatchAll bool
	// CIDRs are the family's CIDRs, masked.
	CIDRs []netip.Prefix
}

// NodePorts is node_port_addresses (cidrs) for the IPv4 or, with ipv6, the
// IPv6 family.
func NodePorts(ipv6 bool, cidrs []netip.Prefix) NodePortAddresses {
	var n NodePortAddresses
	for _, c := range cidrs {
		if InFamily(ipv6, c.Addr()) {
			n.CIDRs = append(n.CIDRs, c.Masked())
		}
	}
	if len(n.CIDRs) == 0 {
		all := netip.IPv4Unspecified()
		if ipv6 {
			all = netip.IPv6Unspecified()
		}
		n.CIDRs = []netip.Prefix{netip.PrefixFrom(all, 0)}
	}
	for _, c := range n.CIDRs {
		if c.Bits() == 0 {
			return NodePortAddresses{MatchAll: true, CIDRs: []netip.Prefix{c}}
		}
	}
	return n
}

// NodeIPs returns the local addresses inside the CIDRs, deduplicated and
// sorted (kube-proxy's GetNodeIPs returns them in map order).
func (n NodePortAddresses) NodeIPs(local []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, c := range n.CIDRs {
		for _, ip := range local {
			if ip = ip.Unmap(); c.Contains(ip) && !slices.Contains(out, ip) {
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// InFamily reports whether a is an IPv4 address or, with ipv6, an IPv6 one
// (an IPv4-mapped IPv6 address counts as IPv4).
func InFamily(ipv6 bool, a netip.Addr) bool {
	if a = a.Unmap(); ipv6 {
		return a.Is6()
	}
	return a.Is4()
}
