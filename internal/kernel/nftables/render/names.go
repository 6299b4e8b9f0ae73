package render

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/service"
)

// The fixed objects of the table, kube-proxy's names. Being inside a table
// of svcnat's own, they carry no prefix.
const (
	filterPreroutingPreDNATChain = "filter-prerouting-pre-dnat"
	filterOutputPreDNATChain     = "filter-output-pre-dnat"
	filterInputChain             = "filter-input"
	filterForwardChain           = "filter-forward"
	filterOutputChain            = "filter-output"
	natPreroutingChain           = "nat-prerouting"
	natOutputChain               = "nat-output"
	natPostroutingChain          = "nat-postrouting"

	servicesChain               = "services"
	serviceEndpointsCheckChain  = "service-endpoints-check"
	nodePortEndpointsCheckChain = "nodeport-endpoints-check"
	clusterIPsCheckChain        = "cluster-ips-check"
	firewallCheckChain          = "firewall-check"
	masqueradingChain           = "masquerading"
	rejectChain                 = "reject-chain"

	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"
	firewallIPsMap         = "firewall-ips"

	clusterIPsSet         = "cluster-ips"
	nodePortIPsSet        = "nodeport-ips"
	hairpinConnectionsSet = "hairpin-connections"

	// affinitySetName holds the clients of every endpoint under ClientIP
	// affinity, keyed by the endpoint's slot and the client (see slots).
	affinitySetName = "affinity"
)

// endpointsMapPrefix names the maps holding the endpoints of the service
// and local chains of one protocol, "endpoints-tcp-0" to "endpoints-tcp-15"
// and so on: a chain's endpoints are in its own range of keys (see slots)
// of the shard its range falls in (endpointsMap).
//
// One set of maps per protocol, because nft 1.0.6 cannot add a rule using
// a map it reads back from the kernel whose typeof names "th dport": it
// refuses "meta l4proto tcp dnat … map @m" with "conflicting protocols
// specified: tcp vs. th" (the same text in the file that declares the map
// loads). A map typed "tcp dport" serves tcp rules only.
const endpointsMapPrefix = "endpoints-"

// endpointShards is how many maps a protocol's chains' endpoints are
// spread over. Why more than one: nf_tables checks the elements added to
// a map against every rule bound to it, so one map bound by every service
// chain made the load grow with chains × endpoints. At internal/bench's
// 30,000 services × 5 endpoints one nft -f took 12.0 s with one map per
// protocol, 8.7 s with 4 shards, 7.9 s with 8, 6.7 s with 16 and 6.8 s
// with 64, and 6.1 s with no endpoint elements at all (nft 1.0.6, kernel
// 6.18, 2026-12-07); at 10,000, 2.5 s and 2.2 s with 16.
const endpointShards = 16

// vipEndpointsMapPrefix names the maps holding the endpoints of every
// chainless service port of one protocol, "vip-endpoints-tcp" and so on,
// keyed by the destination itself and the endpoint's index: "cluster IP
// . port . i" (see dispatchChain). One per protocol for the reason the
// endpoints maps are.
const vipEndpointsMapPrefix = "vip-endpoints-"

// dispatchChainPrefix names the chains a chainless service port's
// service-ips element goes to: "dispatch-tcp-5" picks one of 5 endpoints
// of a tcp port from vip-endpoints-tcp, by the packet's own destination
// and "numgen random mod 5". One such chain per protocol and endpoint
// count in use, shared by every chainless port with them; no "/" in the
// name, so it is no per-service object.
const dispatchChainPrefix = "dispatch-"

// protocols are the protocols a service port may have, lower case: one
// set of endpoints maps each.
var protocols = []string{"tcp", "udp", "sctp"}

// EndpointsMap is the endpoints map of proto holding the range that
// starts at base: the shard of its bucket (base >> rangeBits). The plan
// check holds a rule's map to it.
func EndpointsMap(proto string, base uint32) string { return endpointsMap(proto, base) }

// endpointsMap is EndpointsMap.
func endpointsMap(proto string, base uint32) string {
	return endpointsMapPrefix + proto + "-" + strconv.Itoa(int(base>>rangeBits)%endpointShards)
}

// vipEndpointsMap is the chainless ports' endpoints map of proto.
func vipEndpointsMap(proto string) string { return vipEndpointsMapPrefix + proto }

// dispatchChain is the chain that picks one of n endpoints of a chainless
// port of proto.
func dispatchChain(proto string, n int) string {
	return dispatchChainPrefix + proto + "-" + strconv.Itoa(n)
}

// The prefixes of per-service chains. Every per-service name holds a "/"
// and no fixed name does (kube-proxy's isServiceChainName). Endpoint
// chain names are not written: they are the identity an endpoint's
// affinity slot is derived from.
const (
	servicePrefix  = "service-"
	localPrefix    = "local-"
	externalPrefix = "external-"
	firewallPrefix = "firewall-"
	endpointPrefix = "endpoint-"
)

// chainNameBaseLengthMax leaves room for the longest prefix (16 bytes
// with its hyphen, kube-proxy's chainNamePrefixLengthMax) within nft's
// name limit.
const chainNameBaseLengthMax = knftables.NameLengthMax - 16

// hashAndTruncate is kube-proxy's: the first 8 characters of the base32
// SHA-256 of name, a hyphen and name, cut with "..." past
// chainNameBaseLengthMax. The hash keeps truncated names unique and
// names differing in one digit apart at a glance.
func hashAndTruncate(name string) string {
	sum := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	if len(name) > chainNameBaseLengthMax {
		name = name[:chainNameBaseLengthMax-3] + "..."
	}
	return name
}

// portNameBase is kube-proxy's servicePortChainNameBase,
// "HASH-ns/svc/proto/port". kube-proxy joins namespace and name with "/";
// svcnat's service name is already "ns/name" (or a bare "name", which then
// stands where kube-proxy's "ns/name" would).
func portNameBase(svc, proto, port string) string {
	return hashAndTruncate(svc + "/" + proto + "/" + port)
}

// endpointNameBase is kube-proxy's servicePortEndpointChainNameBase,
// "HASH-ns/svc/proto/port__IP/PORT", with an IPv6 address's colons (not
// allowed in a name) turned into dots.
func endpointNameBase(svc, proto, port string, ep service.Endpoint) string {
	ip := strings.ReplaceAll(ep.Addr.String(), ":", ".")
	return hashAndTruncate(svc + "/" + proto + "/" + port + "__" + ip + "/" + strconv.Itoa(ep.Port))
}

// servicePortName is kube-proxy's ServicePortName.String(), which element
// comments carry: the service ("ns/name") alone for an unnamed port,
// "ns/name:port" for a named one.
func servicePortName(svc, port string) string {
	if port == "" {
		return svc
	}
	return svc + ":" + port
}

// truncateComment cuts s to nft's comment limit, as kube-proxy's
// truncateNFTablesComment does: comments are cosmetic.
func truncateComment(s string) string {
	if len(s) > knftables.CommentLengthMax {
		return s[:knftables.CommentLengthMax]
	}
	return s
}

// PortNameBase is the base of the names of a service port's chains
// ("HASH-ns/name/proto/port", cut as kube-proxy cuts it): what a
// chainless port's service chain would be named after, for readers that
// name it by its service port (the describer).
func PortNameBase(svc, proto, port string) string { return portNameBase(svc, proto, port) }
