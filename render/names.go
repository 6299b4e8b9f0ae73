package render

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strings"

	"github.com/svcnat/svcnat/config"
)

// kubePrefix is the prefix with which svcnat's output is identical to
// kube-proxy's, comments included.
const kubePrefix = "KUBE"

// ServicePortName returns kube-proxy's ServicePortName.String() for a port
// of svc: the service name ("ns/name") alone for an unnamed port, and
// "ns/name:port" for a named one. It is hashed into chain names and written
// into comments, so it must never change for an existing service.
func ServicePortName(svc *config.Service, port *config.Port) string {
	if port.Name == "" {
		return svc.Name
	}
	return svc.Name + ":" + port.Name
}

// EndpointString returns kube-proxy's endpoint string for addr and port, as
// net.JoinHostPort writes it: "10.1.2.3:80" or "[fd00::1]:80". It is hashed
// into the SEP chain name and used in DNAT targets and comments.
func EndpointString(addr netip.Addr, port int) string {
	return netip.AddrPortFrom(addr, uint16(port)).String()
}

// PortChains are the names of the per-service-port chains of one service
// port. All four share one hash, so they exist or not independently of the
// IP family; which of them a ruleset really holds depends on the service's
// policies and endpoints.
type PortChains struct {
	SVC string // cluster-policy endpoints (KUBE-SVC-)
	SVL string // local-policy endpoints (KUBE-SVL-)
	EXT string // external destinations (KUBE-EXT-)
	FW  string // load-balancer source ranges (KUBE-FW-)
}

// ChainNames returns the per-port chain names kube-proxy would use for
// port of svc, with prefix in place of "KUBE".
func ChainNames(prefix string, svc *config.Service, port *config.Port) PortChains {
	h := portProtoHash(ServicePortName(svc, port), strings.ToLower(port.Protocol))
	return PortChains{
		SVC: prefix + "-SVC-" + h,
		SVL: prefix + "-SVL-" + h,
		EXT: prefix + "-EXT-" + h,
		FW:  prefix + "-FW-" + h,
	}
}

// EndpointChainName returns the KUBE-SEP- chain name (with prefix in place
// of "KUBE") of the endpoint addr:targetPort of port of svc.
func EndpointChainName(prefix string, svc *config.Service, port *config.Port, addr netip.Addr, targetPort int) string {
	return prefix + "-SEP-" + hash16(ServicePortName(svc, port)+strings.ToLower(port.Protocol)+EndpointString(addr, targetPort))
}

// portProtoHash is kube-proxy's portProtoHash: the first 16 characters of
// the standard base32 encoding of sha256(servicePortName + protocol).
func portProtoHash(servicePortName, protocol string) string {
	return hash16(servicePortName + protocol)
}

func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// fixedChains holds the names of the chains every ruleset has, and the word
// that stands for the product in comments.
type fixedChains struct {
	prefix           string
	services         string // nat and filter
	externalServices string // filter
	nodePorts        string // nat and filter
	postrouting      string // nat
	markMasq         string // nat
	forward          string // filter
	proxyFirewall    string // filter
	firewall         string // filter, IPv4 with localhost node ports only
	product          string // "kubernetes" for KUBE, else "svcnat"
}

func newFixedChains(prefix string) fixedChains {
	product := "svcnat"
	if prefix == kubePrefix {
		product = "kubernetes"
	}
	return fixedChains{
		prefix:           prefix,
		services:         prefix + "-SERVICES",
		externalServices: prefix + "-EXTERNAL-SERVICES",
		nodePorts:        prefix + "-NODEPORTS",
		postrouting:      prefix + "-POSTROUTING",
		markMasq:         prefix + "-MARK-MASQ",
		forward:          prefix + "-FORWARD",
		proxyFirewall:    prefix + "-PROXY-FIREWALL",
		firewall:         prefix + "-FIREWALL",
		product:          product,
	}
}
