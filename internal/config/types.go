// Package config holds svcnat's configuration model: the HCL schema, its
// decoding with defaults, and its validation. It returns typed values and
// hcl.Diagnostics; it never prints, exits, or touches the kernel.
package config

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Service types, traffic policies, affinities and protocols as they are
// spelled in the HCL (and in the Kubernetes API).
const (
	TypeClusterIP    = "ClusterIP"
	TypeNodePort     = "NodePort"
	TypeLoadBalancer = "LoadBalancer"

	PolicyCluster = "Cluster"
	PolicyLocal   = "Local"

	AffinityNone     = "None"
	AffinityClientIP = "ClientIP"

	ProtoTCP  = "TCP"
	ProtoUDP  = "UDP"
	ProtoSCTP = "SCTP"
)

// Defaults applied when an attribute is absent.
const (
	DefaultChainPrefix            = "SVCNAT"
	DefaultMasqueradeBit          = 14
	DefaultNodePortMin            = 30000
	DefaultNodePortMax            = 32767
	DefaultSessionAffinityTimeout = 10800
)

// Config is one validated configuration: every file of a run merged.
type Config struct {
	Settings Settings
	// Services sorted by Name.
	Services []*Service
	// Files holds the source of every file read, keyed by the name used in
	// diagnostics, so that a diagnostic writer can show snippets. Load and
	// Parse set it even when they fail (then it is the only field set).
	// Without diagnostics a File holds only its Bytes: the syntax trees
	// are dropped once decoded (see Parse).
	Files map[string]*hcl.File
}

// Settings is the optional settings block, with defaults applied.
type Settings struct {
	ChainPrefix       string
	Node              string // may be empty; the CLI resolves --node, SVCNAT_NODE, hostname
	ClusterCIDRs      []netip.Prefix
	MasqueradeAll     bool
	MasqueradeBit     int
	NodePortAddresses []netip.Prefix
	NodePortRange     PortRange
	// LocalhostNodePorts mirrors kube-proxy's --iptables-localhost-nodeports.
	// svcnat defaults it to false because it does not set route_localnet,
	// without which node ports on 127.0.0.1 cannot work.
	LocalhostNodePorts bool

	DeclRange hcl.Range
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Min, Max int }

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p int) bool { return p >= r.Min && p <= r.Max }

// Service is one service block. Name is the block label, "ns/name" or "name".
type Service struct {
	Name                     string
	Type                     string
	ClusterIPs               []netip.Addr
	ExternalIPs              []netip.Addr
	LoadBalancerIPs          []netip.Addr
	LoadBalancerSourceRanges []netip.Prefix
	ExternalTrafficPolicy    string
	InternalTrafficPolicy    string
	HealthCheckNodePort      int
	SessionAffinity          string
	SessionAffinityTimeout   int
	// Ports sorted by Name.
	Ports     []*Port
	Endpoints []*Endpoint
	// HealthCheck is the optional health_check block: the checks svcnat
	// reconcile sends to each endpoint (nil: none, the file's conditions
	// alone decide).
	HealthCheck *HealthCheck

	DeclRange hcl.Range
}

// Health-check protocols as they are spelled in the HCL.
const (
	CheckTCP  = "tcp"
	CheckHTTP = "http"
	CheckUDP  = "udp"
)

// Defaults of a health_check block's attributes. Timeout is
// DefaultCheckTimeout or the interval, whichever is shorter.
const (
	DefaultCheckInterval = 2 * time.Second
	DefaultCheckTimeout  = time.Second
	DefaultCheckRise     = 2
	DefaultCheckFall     = 3
	DefaultCheckPath     = "/"            // http
	DefaultCheckSend     = "svcnat-probe" // udp, as --probe's udp:// sends
)

// HealthCheck is a service's health_check block, with defaults applied.
// reconcile checks each endpoint's address directly (never through the
// service's addresses), from the namespace the rules are in; an endpoint
// that fails Fall checks in a row is taken out of the rules as not ready
// and not serving until it passes Rise in a row.
type HealthCheck struct {
	Protocol string // CheckTCP, CheckHTTP or CheckUDP
	// Port is the port checked on every endpoint; 0 checks each
	// endpoint's target port for the service port ServicePort names.
	Port int
	// ServicePort names the service port whose target port is checked
	// when Port is 0 (the service_port attribute; "" for the unnamed
	// port). Validation sets it: when the block does not, it is the first
	// port, in name order, of the check's transport (UDP for udp, else TCP).
	ServicePort string
	Path        string // http: the path requested; 2xx and 3xx pass
	// Send and Expect are udp's: the datagram sent, and the reply wanted
	// ("" accepts any reply), as --probe's udp:// sends and compares them.
	Send, Expect      string
	Interval, Timeout time.Duration
	Rise, Fall        int

	DeclRange hcl.Range
}

// Port is one port block of a service.
type Port struct {
	Name       string
	Protocol   string // TCP, UDP or SCTP
	Port       int
	TargetPort int // defaults to Port
	NodePort   int // 0 when none

	DeclRange hcl.Range
}

// Endpoint is one endpoint block of a service.
type Endpoint struct {
	Address     netip.Addr
	Node        string
	Ready       bool
	Serving     bool
	Terminating bool
	// Ports overrides the target port per port name ("" for an unnamed port).
	Ports map[string]int

	DeclRange hcl.Range
}

// CheckedPort returns the port hc checks on endpoint e of s, and
// whether there is one (a service port of hc.ServicePort's name).
func (hc *HealthCheck) CheckedPort(s *Service, e *Endpoint) (int, bool) {
	if hc.Port != 0 {
		return hc.Port, true
	}
	for _, p := range s.Ports {
		if p.Name == hc.ServicePort {
			return e.TargetPort(p), true
		}
	}
	return 0, false
}

// ExternallyAccessible mirrors kube-proxy's ServicePort.ExternallyAccessible:
// the service can be reached from outside the node by a node port, an
// external IP or a load-balancer IP.
func (s *Service) ExternallyAccessible(p *Port) bool {
	return p.NodePort != 0 || len(s.ExternalIPs) > 0 || len(s.LoadBalancerIPs) > 0
}

// TargetPort returns the port an endpoint receives traffic for p on.
func (e *Endpoint) TargetPort(p *Port) int {
	if v, ok := e.Ports[p.Name]; ok {
		return v
	}
	return p.TargetPort
}
