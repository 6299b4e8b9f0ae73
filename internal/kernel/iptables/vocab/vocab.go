// Package vocab is kube-proxy's vocabulary, in one place: the names it
// gives chains (prefix, kind and hash), the comments it writes on rules,
// and the way back from a live chain name or comment to its kind and its
// service. render writes rules with it; describe and trace read live rules
// with it.
// It knows nothing of configurations, kernels or output.
package vocab

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// KubePrefix is the chain prefix with which svcnat's rules are
// kube-proxy's, comments included.
const KubePrefix = "KUBE"

// Kind is the role of a chain in kube-proxy's layout. A chain is named
// PREFIX-KIND, and a per-service chain PREFIX-KIND-HASH.
type Kind string

// The fixed chains, one of each per table that uses it.
const (
	Services         Kind = "SERVICES"          // nat and filter: every service address
	ExternalServices Kind = "EXTERNAL-SERVICES" // filter: drops and rejects for external traffic
	NodePorts        Kind = "NODEPORTS"         // nat and filter: node ports, health-check ports
	Postrouting      Kind = "POSTROUTING"       // nat: masquerade what is marked
	MarkMasq         Kind = "MARK-MASQ"         // nat: mark for masquerade
	Forward          Kind = "FORWARD"           // filter: accept service traffic on DROP-policy hosts
	ProxyFirewall    Kind = "PROXY-FIREWALL"    // filter: load-balancer source ranges
	Firewall         Kind = "FIREWALL"          // filter: the localhost node port hole (kubelet's)
)

// The per-service chains, named PREFIX-KIND-HASH.
const (
	SVC Kind = "SVC" // a service port's endpoints for cluster traffic policy
	SVL Kind = "SVL" // its endpoints on this node, for Local policy
	EXT Kind = "EXT" // its external destinations (node ports, external and load-balancer IPs)
	FW  Kind = "FW"  // its load-balancer source ranges
	SEP Kind = "SEP" // one endpoint: DNAT
)

var perService = []Kind{SVC, SVL, EXT, FW, SEP}

var fixed = []Kind{Services, ExternalServices, NodePorts, Postrouting, MarkMasq, Forward, ProxyFirewall, Firewall}

// PerService reports whether chains of kind k belong to one service.
func (k Kind) PerService() bool {
	for _, p := range perService {
		if k == p {
			return true
		}
	}
	return false
}

// Vocab is the vocabulary of one chain prefix.
type Vocab struct {
	Prefix string
}

// For returns the vocabulary of prefix.
func For(prefix string) Vocab { return Vocab{Prefix: prefix} }

// Product is the word shared comments name the proxy by: "kubernetes"
// with kube-proxy's prefix, so the rules are kube-proxy's, else "svcnat".
func (v Vocab) Product() string {
	if v.Prefix == KubePrefix {
		return "kubernetes"
	}
	return "svcnat"
}

// Chain names the fixed chain of kind k: PREFIX-KIND.
func (v Vocab) Chain(k Kind) string { return v.Prefix + "-" + string(k) }

// KindOf returns the kind of chain when it is one of the prefix's fixed or
// per-service chains, else "".
func (v Vocab) KindOf(chain string) Kind {
	rest, ok := strings.CutPrefix(chain, v.Prefix+"-")
	if !ok {
		return ""
	}
	for _, k := range fixed {
		if rest == string(k) {
			return k
		}
	}
	for _, k := range perService {
		if strings.HasPrefix(rest, string(k)+"-") {
			return k
		}
	}
	return ""
}

// PortChains are the names of the per-service chains of one service port.
// All four share one hash, so their names do not depend on the IP family;
// which of them a ruleset holds depends on the service's policies and
// endpoints.
type PortChains struct {
	SVC, SVL, EXT, FW string
}

// PortChains names the chains of the service port servicePortName (see
// ServicePortName) and protocol, as kube-proxy's servicePortChainName and
// friends do.
func (v Vocab) PortChains(servicePortName, protocol string) PortChains {
	h := hash16(servicePortName + strings.ToLower(protocol))
	name := func(k Kind) string { return v.Prefix + "-" + string(k) + "-" + h }
	return PortChains{SVC: name(SVC), SVL: name(SVL), EXT: name(EXT), FW: name(FW)}
}

// EndpointChain names the SEP chain of endpoint (kube-proxy's endpoint
// string, service.Endpoint's String: "10.1.2.3:80" or "[fd00::1]:80") of
// a service port, as kube-proxy's servicePortEndpointChainName does.
func (v Vocab) EndpointChain(servicePortName, protocol, endpoint string) string {
	return v.Prefix + "-" + string(SEP) + "-" + hash16(servicePortName+strings.ToLower(protocol)+endpoint)
}

// hash16 is the first 16 characters of the standard base32 encoding of
// sha256(s), kube-proxy's portProtoHash and endpoint hash.
func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// ServicePortName is kube-proxy's ServicePortName.String(): the service
// ("ns/name") alone for an unnamed port, "ns/name:port" for a named one. It
// is hashed into chain names and written into comments, so it must never
// change for an existing service.
func ServicePortName(service, port string) string {
	if port == "" {
		return service
	}
	return service + ":" + port
}
