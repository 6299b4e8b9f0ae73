package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// settings builds Settings from the settings blocks of every file, in file
// order, applying defaults. At most one block is allowed in the whole run:
// two would leave which value wins to file names. nodePortsOK is false when
// node_port_range is unusable, so node ports are not checked against it.
func (d *decoder) settings(blocks []*rawSettings) (s Settings, nodePortsOK bool) {
	s = Settings{
		ChainPrefix:   DefaultChainPrefix,
		MasqueradeBit: DefaultMasqueradeBit,
		NodePortRange: PortRange{Min: DefaultNodePortMin, Max: DefaultNodePortMax},
	}
	if len(blocks) == 0 {
		return s, true
	}
	for _, extra := range blocks[1:] {
		d.errorf(extra.DefRange, "duplicate settings block",
			"Only one settings block is allowed in a configuration; the first is at %s. Merge the two.", pos(blocks[0].DefRange))
	}
	r := blocks[0]
	s.DeclRange = r.DefRange
	nodePortsOK = true

	if v, st := d.str(r.ChainPrefix); st == set {
		if d.checkChainPrefix(r.ChainPrefix.Range, v) {
			s.ChainPrefix = v
		}
	}
	if v, st := d.str(r.Node); st == set {
		if !ValidNodeName(v) {
			d.errorf(r.Node.Range, "invalid node name", "node %q: %s.", v, nodeNameRule)
		}
		s.Node = v
	}
	if items, st := d.strList(r.ClusterCIDRs); st == set {
		ps, _ := d.prefixes("cluster_cidrs", items)
		s.ClusterCIDRs = prefixValues(ps)
	}
	if v, st := d.flag(r.MasqueradeAll); st == set {
		s.MasqueradeAll = v
	}
	if v, st := d.num(r.MasqueradeBit); st == set {
		if v < 0 || v > 31 {
			d.errorf(r.MasqueradeBit.Range, "masquerade_bit out of range",
				"masquerade_bit is %d; it names a bit of the 32-bit packet mark, so it must be between 0 and 31 (kube-proxy uses 14).", v)
		}
		s.MasqueradeBit = v
	}
	if items, st := d.strList(r.NodePortAddresses); st == set {
		ps, _ := d.prefixes("node_port_addresses", items)
		s.NodePortAddresses = prefixValues(ps)
	}
	switch v, st := d.str(r.NodePortRange); st {
	case set:
		pr, problem := parsePortRange(v)
		if problem != "" {
			d.errorf(r.NodePortRange.Range, "invalid node_port_range", "node_port_range %q: %s.", v, problem)
			nodePortsOK = false
		} else {
			s.NodePortRange = pr
		}
	case bad:
		nodePortsOK = false
	}
	if v, st := d.flag(r.LocalhostNodePorts); st == set {
		s.LocalhostNodePorts = v
	}
	return s, nodePortsOK
}

const nodeNameRule = `a node name is lower-case letters, digits, '-' and '.', starts and ends with a letter or digit, and has at most 253 characters`

// ValidChainPrefix reports whether v is a chain prefix svcnat may own, by
// the rules chain_prefix is checked with; a saved plan's prefix, which no
// configuration checked, goes through it too.
func ValidChainPrefix(v string) bool {
	return chainPrefixPattern.MatchString(v) && len(v) <= maxChainPrefixLen && foreignPrefixes[v] == ""
}

// checkChainPrefix reports a chain_prefix that would make chain names
// invalid, too long, or collide with another owner's chains.
func (d *decoder) checkChainPrefix(subject hcl.Range, v string) bool {
	switch {
	case !chainPrefixPattern.MatchString(v):
		d.errorf(subject, "invalid chain_prefix",
			"chain_prefix %q: it must start with an upper-case letter and hold only upper-case letters and digits, e.g. \"SVCNAT\" or \"KUBE\".", v)
	case len(v) > maxChainPrefixLen:
		d.errorf(subject, "chain_prefix longer than six characters",
			"chain_prefix %q has %d characters; chain names such as %s-SVC-<16-character hash> must fit iptables' 28-character limit, so use at most %d.",
			v, len(v), v, maxChainPrefixLen)
	case foreignPrefixes[v] != "":
		d.errorf(subject, "chain_prefix owned by other software",
			"svcnat owns every chain named %s-…, and those belong to %s; pick another prefix.", v, foreignPrefixes[v])
	default:
		return true
	}
	return false
}

var portRangePattern = regexp.MustCompile(`^([0-9]{1,5})-([0-9]{1,5})$`)

// parsePortRange parses "MIN-MAX" and says what is wrong with it ("" when
// nothing is).
func parsePortRange(s string) (PortRange, string) {
	m := portRangePattern.FindStringSubmatch(s)
	if m == nil {
		return PortRange{}, `write it as "MIN-MAX", e.g. "30000-32767"`
	}
	lo, _ := strconv.Atoi(m[1])
	hi, _ := strconv.Atoi(m[2])
	switch {
	case lo < 1 || hi > 65535:
		return PortRange{}, "both ends must be ports between 1 and 65535"
	case lo > hi:
		return PortRange{}, fmt.Sprintf("the first port is above the second; write \"%d-%d\"", hi, lo)
	}
	return PortRange{Min: lo, Max: hi}, ""
}

func prefixValues(ps []prefixItem) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Prefix
	}
	return out
}
