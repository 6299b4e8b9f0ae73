package config

import (
	"regexp"
	"strings"
)

// Names reach iptables-restore lines (comments, recent-list names, chain
// hashes), so they are never escaped, only refused: the pattern admits no
// quote, space, newline, '#' or anything else a restore line could read as
// syntax.
var namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Length limits keep every comment kube-proxy would write for a service
// port ("ns/name:port" plus its fixed text) under the 255 bytes of the
// iptables comment match. They are the Kubernetes limits: a DNS label for
// each side of a service name and a DNS subdomain for a node name.
const (
	maxNameLen     = 63
	maxNodeNameLen = 253
)

// ValidName reports whether s may be a port name, or a namespace or name
// inside a service name.
func ValidName(s string) bool {
	return len(s) <= maxNameLen && namePattern.MatchString(s)
}

// ValidServiceName reports whether s may be a service block label:
// "name" or "namespace/name", each side a ValidName.
func ValidServiceName(s string) bool {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return ValidName(s)
	}
	return ValidName(ns) && ValidName(name)
}

// ValidNodeName reports whether s may be a node name.
func ValidNodeName(s string) bool {
	return len(s) <= maxNodeNameLen && namePattern.MatchString(s)
}

// chainPrefixPattern keeps owned chain names within iptables' 28-character
// limit: the longest is PREFIX-SVC- plus a 16-character hash, and the spec
// leaves a margin by allowing six characters.
var chainPrefixPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]*$`)

const maxChainPrefixLen = 6

// foreignPrefixes are chain prefixes that other software owns on the hosts
// svcnat targets. svcnat owns every chain starting with PREFIX-, so taking
// one of these would let plan and destroy remove, say, DOCKER-USER.
var foreignPrefixes = map[string]string{
	"DOCKER": "Docker (DOCKER-USER, DOCKER-ISOLATION-STAGE-1, ...)",
	"WEAVE":  "Weave Net (WEAVE-NPC, ...)",
	// On nftables svcnat owns the table named by the prefix in lower
	// case (ip svcnat): these name iptables-nft's own tables, which hold
	// Docker's and everyone's iptables rules.
	"NAT":    "iptables-nft (its nftables table ip nat, which the nftables backend would take for svcnat's)",
	"FILTER": "iptables-nft (its nftables table ip filter, which the nftables backend would take for svcnat's)",
	"MANGLE": "iptables-nft (its nftables table ip mangle, which the nftables backend would take for svcnat's)",
	"RAW":    "iptables-nft (its nftables table ip raw, which the nftables backend would take for svcnat's)",
}

// quoteList renders allowed values for a Detail: "A", "B" or "C".
func quoteList(vals []string) string {
	var b strings.Builder
	for i, v := range vals {
		switch {
		case i == 0:
		case i == len(vals)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(`"` + v + `"`)
	}
	return b.String()
}

// suggest returns the allowed value that s matches case-insensitively, for
// a "did you mean" hint; "" when none does.
func suggest(s string, vals []string) string {
	for _, v := range vals {
		if strings.EqualFold(s, v) {
			return v
		}
	}
	return ""
}
