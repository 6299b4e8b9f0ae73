package describe

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// The names below are the renderer's (render/names.go), read back: the
// table's fixed objects carry kube-proxy's names without a prefix, and
// every per-service object is named "<kind>-HASH-ns/name/proto/port", the
// only objects whose names hold a "/". Endpoint chains and affinity sets
// ("…__ip/port") are kube-proxy's shape, which the renderer no longer
// writes (the endpoints maps and the affinity set hold them); they are
// still read, so that a table an earlier svcnat wrote is described.

// The fixed objects svcnat's table holds.
const (
	servicesChain   = "services"
	rejectChain     = "reject-chain"
	serviceIPs      = "service-ips"
	serviceNodePort = "service-nodeports"
	noEndpointSvcs  = "no-endpoint-services"
	noEndpointNPs   = "no-endpoint-nodeports"
	firewallIPs     = "firewall-ips"
	clusterIPs      = "cluster-ips"
	nodePortIPs     = "nodeport-ips"
	hairpinConns    = "hairpin-connections"
)

// The objects of chainless service ports (render/names.go): the dispatch
// chains, "dispatch-PROTO-N", and the vip-endpoints maps, keyed "cluster
// IP . port . index".
const (
	dispatchPrefix     = "dispatch-"
	vipEndpointsPrefix = "vip-endpoints-"
)

// endpointsMapPrefix begins the names of the endpoints maps,
// "endpoints-PROTO-N", shard N of a protocol's service and local chains'
// ranges (render/names.go).
const endpointsMapPrefix = "endpoints-"

// endpointsMapOf reads an endpoints map's name: its protocol.
func endpointsMapOf(name string) (proto string, ok bool) {
	rest, ok := strings.CutPrefix(name, endpointsMapPrefix)
	if !ok {
		return "", false
	}
	proto, shard, ok := strings.Cut(rest, "-")
	n, err := strconv.Atoi(shard)
	if !ok || !isProto(proto) || err != nil || n < 0 || strconv.Itoa(n) != shard {
		return "", false
	}
	return proto, true
}

// isEndpointsMap reports whether name is an endpoints map's.
func isEndpointsMap(name string) bool {
	_, ok := endpointsMapOf(name)
	return ok
}

// dispatchOf reads a dispatch chain's name: its protocol and endpoint
// count.
func dispatchOf(name string) (proto string, n int, ok bool) {
	rest, ok := strings.CutPrefix(name, dispatchPrefix)
	if !ok {
		return "", 0, false
	}
	proto, count, ok := strings.Cut(rest, "-")
	n, err := strconv.Atoi(count)
	if !ok || !isProto(proto) || err != nil || n < 1 || n > maxRange || strconv.Itoa(n) != count {
		return "", 0, false
	}
	return proto, n, true
}

// objKind is what kind of per-service object a name is.
type objKind int

const (
	notPerService objKind = iota
	svcChain              // service-…: the endpoints for cluster traffic policy (iptables' SVC)
	localChain            // local-…: the endpoints on this node (SVL)
	extChain              // external-…: external destinations (EXT)
	fwChain               // firewall-…: load-balancer source ranges (FW)
	epChain               // endpoint-…: one endpoint, for affinity (SEP)
	affinitySet           // affinity-…: the clients of one endpoint
)

var kindPrefixes = []struct {
	prefix string
	kind   objKind
}{
	{"service-", svcChain}, {"local-", localChain}, {"external-", extChain},
	{"firewall-", fwChain}, {"endpoint-", epChain}, {"affinity-", affinitySet},
}

// iptablesKind is the kind of the iptables chain that does what an object
// of kind k does, as the views name chains (backend.SubjectChain).
func iptablesKind(k objKind) string {
	switch k {
	case svcChain:
		return "SVC"
	case localChain:
		return "SVL"
	case extChain:
		return "EXT"
	case fwChain:
		return "FW"
	}
	return ""
}

// perService splits a per-service object's name into its kind and base
// ("HASH-ns/name/proto/port…"); notPerService for a fixed name.
func perService(name string) (objKind, string) {
	if !strings.Contains(name, "/") {
		return notPerService, ""
	}
	for _, p := range kindPrefixes {
		if base, ok := strings.CutPrefix(name, p.prefix); ok {
			return p.kind, base
		}
	}
	return notPerService, ""
}

// portOfBase reads a base back: the service, protocol and port name of
// "HASH-ns/name/proto/port" (an endpoint's "…__ip/port" cut off). ok is
// false for a name cut short ("…") or not of this shape.
func portOfBase(base string) (svc, proto, port string, ok bool) {
	if strings.HasSuffix(base, "...") || len(base) < 10 || base[8] != '-' || !isHash(base[:8]) {
		return "", "", "", false
	}
	rest, _, _ := strings.Cut(base[9:], "__")
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", "", false
	}
	rest, port = rest[:i], rest[i+1:]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 {
		return "", "", "", false
	}
	svc, proto = rest[:j], rest[j+1:]
	if !isProto(proto) {
		return "", "", "", false
	}
	return svc, proto, port, true
}

// isHash reports whether s is kube-proxy's 8-character base32 hash.
func isHash(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '2' && s[i] <= '7') {
			return false
		}
	}
	return len(s) == 8
}

func isProto(s string) bool { return s == "tcp" || s == "udp" || s == "sctp" }

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 1<<16 && strconv.Itoa(n) == s
}

// element is a set's or map's element read back: "KEY [comment "C"] [:
// VERDICT]", KEY's fields joined by " . ".
type element struct {
	key     []string
	comment string
	verdict string // a map's value, "" for a set's element
}

// parseElement reads an element's text (backend.Rule.Text).
func parseElement(text string) element {
	var e element
	k, v, ok := strings.Cut(text, " : ")
	if ok {
		e.verdict = v
	}
	if i := strings.Index(k, ` comment "`); i >= 0 && strings.HasSuffix(k, `"`) {
		if c, err := strconv.Unquote(k[i+len(" comment "):]); err == nil {
			e.comment = c
		}
		k = k[:i]
	}
	e.key = strings.Split(k, " . ")
	return e
}

// target is the chain a map element's "goto CHAIN" sends to, "".
func (e element) target() string {
	t, _ := strings.CutPrefix(e.verdict, "goto ")
	if t == e.verdict {
		return ""
	}
	return t
}

// keyString is the element's key as the index keeps it.
func (e element) keyString() string { return strings.Join(e.key, " . ") }

// address is "ip:port/proto" of a key "ip . proto . port" ("[ip]:port/proto"
// for IPv6), as the iptables describer names addresses.
func address(key []string) string {
	if len(key) != 3 {
		return strings.Join(key, " . ")
	}
	a, err := netip.ParseAddr(key[0])
	if err != nil {
		return strings.Join(key, " . ")
	}
	if a.Is6() {
		return "[" + key[0] + "]:" + key[2] + "/" + key[1]
	}
	return key[0] + ":" + key[2] + "/" + key[1]
}

// serviceOfComment is the service of an element comment, which is the
// service port's name ("ns/name:port", "ns/name" for an unnamed port);
// "" when nft's comment limit cut it (the key tells then).
func serviceOfComment(c string) string {
	if c == "" || len(c) >= 128 {
		return ""
	}
	svc, _, _ := strings.Cut(c, ":")
	return svc
}

// sortByKind orders objects as the text form does: by kind, then name.
func sortByKind(objects []*backend.Chain) {
	slices.SortStableFunc(objects, func(a, b *backend.Chain) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
}
