package config

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/hcl/v2"
)

// familyName names an address family the way diagnostics say it.
func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

// parseAddr parses one IP address of a list attribute and says what is
// wrong with it ("" when nothing is). Only canonical
// netip values ever reach a rule, so what the user wrote is never echoed
// into iptables input; zones are refused because a zone is free text.
func parseAddr(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		if _, perr := netip.ParsePrefix(s); perr == nil {
			return netip.Addr{}, "an address is wanted here, not a CIDR; drop the /length"
		}
		return netip.Addr{}, "not an IP address; write an IPv4 address such as 10.32.0.10 or an IPv6 address such as fd00::10"
	case a.Zone() != "":
		return netip.Addr{}, "an address with a zone (%...) cannot be matched by iptables; drop the zone"
	case a.Is4In6():
		return netip.Addr{}, fmt.Sprintf("an IPv4-mapped IPv6 address is ambiguous; write it as %s", a.Unmap())
	case v4Compatible(a):
		return netip.Addr{}, v4CompatibleProblem
	}
	return a, ""
}

// v4Compatible reports an IPv4-compatible IPv6 address (::a.b.c.d,
// deprecated by RFC 4291) that iptables-save and nft print in that dotted
// form, as glibc's inet_ntop writes every address of ::/96 whose seventh
// 16-bit word is not zero, where svcnat writes Go's (::102:304): a rule
// holding one would never read back as written.
func v4Compatible(a netip.Addr) bool {
	b := a.As16()
	return a.Is6() && !a.Is4In6() && [12]byte(b[:12]) == [12]byte{} && (b[12] != 0 || b[13] != 0)
}

const v4CompatibleProblem = "an IPv4-compatible IPv6 address (::a.b.c.d, deprecated) is not supported; write the IPv4 form"

// parsePrefix parses one CIDR of a list attribute, like parseAddr. A CIDR
// with host bits set is refused rather than masked: iptables-save prints the
// masked form, so the rendered rule would never match the live one, and the
// stray bits are more often a typo in the length than intended.
func parsePrefix(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
			return netip.Prefix{}, fmt.Sprintf("a CIDR needs a prefix length; write %s/%d for a single address", s, a.BitLen())
		}
		return netip.Prefix{}, "not a CIDR; write an IPv4 CIDR such as 10.64.0.0/14 or an IPv6 CIDR such as fd00::/64"
	case p.Addr().Is4In6():
		return netip.Prefix{}, "an IPv4-mapped IPv6 CIDR is ambiguous; write the IPv4 form"
	case v4Compatible(p.Addr()):
		return netip.Prefix{}, v4CompatibleProblem
	case p != p.Masked():
		return netip.Prefix{}, fmt.Sprintf("host bits are set; write %s (or fix the prefix length)", p.Masked())
	}
	return p, ""
}

// specialAddr says why a cluster, external, load-balancer or endpoint
// address cannot carry service traffic; "" when it can. It is stricter
// than the Kubernetes API, which refuses only some of these (it admits
// non-link-local multicast, for one): no DNAT to such an address works.
func specialAddr(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsMulticast():
		return "a multicast address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	}
	return ""
}

// addrItem is a parsed address with the range of the element it came from.
type addrItem struct {
	Addr  netip.Addr
	Range hcl.Range
}

// prefixItem is a parsed CIDR with the range of the element it came from.
type prefixItem struct {
	Prefix netip.Prefix
	Range  hcl.Range
}

// addrs parses a list of addresses. ok is false when an element was bad
// (reported), so callers skip the checks that need the whole list.
// Duplicates are refused: each would render the same rules twice.
func (d *decoder) addrs(attr string, items []item, noSpecial bool) ([]addrItem, bool) {
	out := make([]addrItem, 0, len(items))
	seen := map[netip.Addr]hcl.Range{}
	ok := true
	for _, it := range items {
		a, problem := parseAddr(it.S)
		if problem == "" && noSpecial {
			if sp := specialAddr(a); sp != "" {
				problem = sp + " cannot carry service traffic"
			}
		}
		if problem != "" {
			d.errorf(it.Range, "invalid IP address", "%s: %q: %s.", attr, it.S, problem)
			ok = false
			continue
		}
		if first, dup := seen[a]; dup {
			d.errorf(it.Range, "duplicate address", "%s lists %s twice (first at %s); remove one.", attr, a, pos(first))
			ok = false
			continue
		}
		seen[a] = it.Range
		out = append(out, addrItem{Addr: a, Range: it.Range})
	}
	return out, ok
}

// prefixes parses a list of CIDRs, like addrs.
func (d *decoder) prefixes(attr string, items []item) ([]prefixItem, bool) {
	out := make([]prefixItem, 0, len(items))
	seen := map[netip.Prefix]hcl.Range{}
	ok := true
	for _, it := range items {
		p, problem := parsePrefix(it.S)
		if problem != "" {
			d.errorf(it.Range, "invalid CIDR", "%s: %q: %s.", attr, it.S, problem)
			ok = false
			continue
		}
		if first, dup := seen[p]; dup {
			d.errorf(it.Range, "duplicate CIDR", "%s lists %s twice (first at %s); remove one.", attr, p, pos(first))
			ok = false
			continue
		}
		seen[p] = it.Range
		out = append(out, prefixItem{Prefix: p, Range: it.Range})
	}
	return out, ok
}
