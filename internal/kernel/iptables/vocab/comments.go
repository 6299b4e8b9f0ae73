package vocab

import (
	"fmt"
	"regexp"
	"strings"
)

// Role is what a rule does for one service port, as its comment says.
type Role int

// The roles of per-service rules, each with the comment kube-proxy writes.
// SP stands for the service port name (ServicePortName).
const (
	NoRole              Role = iota
	PortRule                 // "SP": SEP rules, node port dispatch
	ClusterIP                // "SP cluster IP"
	ExternalIP               // "SP external IP"
	LoadBalancerIP           // "SP loadbalancer IP"
	HealthCheckNodePort      // "SP health check node port"
	NoEndpoints              // "SP has no endpoints"
	NoLocalEndpoints         // "SP has no local endpoints"
	EndpointChoice           // "SP -> ENDPOINT"
	NotAccepted              // "SP traffic not accepted by FW-CHAIN"
	OtherTrafficDropped      // "other traffic to SP will be dropped by PROXY-FIREWALL-CHAIN"
	ExternalMasquerade       // "masquerade traffic for SP external destinations"
	PodShortCircuit          // "pod traffic for SP external destinations"
	LocalMasquerade          // "masquerade LOCAL traffic for SP external destinations"
	LocalShortCircuit        // "route LOCAL traffic for SP external destinations"
)

// roleFormats holds each role's comment, with %[1]s for the service port
// name and %[2]s for the role's one extra word (an endpoint or a chain).
var roleFormats = map[Role]string{
	PortRule:            "%[1]s",
	ClusterIP:           "%[1]s cluster IP",
	ExternalIP:          "%[1]s external IP",
	LoadBalancerIP:      "%[1]s loadbalancer IP",
	HealthCheckNodePort: "%[1]s health check node port",
	NoEndpoints:         "%[1]s has no endpoints",
	NoLocalEndpoints:    "%[1]s has no local endpoints",
	EndpointChoice:      "%[1]s -> %[2]s",
	NotAccepted:         "%[1]s traffic not accepted by %[2]s",
	OtherTrafficDropped: "other traffic to %[1]s will be dropped by %[2]s",
	ExternalMasquerade:  "masquerade traffic for %[1]s external destinations",
	PodShortCircuit:     "pod traffic for %[1]s external destinations",
	LocalMasquerade:     "masquerade LOCAL traffic for %[1]s external destinations",
	LocalShortCircuit:   "route LOCAL traffic for %[1]s external destinations",
}

// Comment writes the comment of role for the service port name sp; extra is
// the endpoint of EndpointChoice or the chain of NotAccepted and
// OtherTrafficDropped.
func Comment(role Role, sp string, extra ...string) string {
	args := []any{sp, ""}
	if len(extra) > 0 {
		args[1] = extra[0]
	}
	return fmt.Sprintf(roleFormats[role], args...)
}

// SharedRole is what a rule serving every service does, as its comment says.
type SharedRole int

// The roles of shared rules. PRODUCT stands for Vocab.Product.
const (
	ServicePortals       SharedRole = iota // "PRODUCT service portals"
	ExternallyVisible                      // "PRODUCT externally-visible service portals"
	HealthCheckPorts                       // "PRODUCT health check service ports"
	ForwardingRules                        // "PRODUCT forwarding rules"
	ForwardingConntrack                    // "PRODUCT forwarding conntrack rule"
	LoadBalancerFirewall                   // "PRODUCT load balancer firewall"
	PostroutingRules                       // "PRODUCT postrouting rules"
	RequiringSNAT                          // "PRODUCT service traffic requiring SNAT"
	NodePortsLast                          // "PRODUCT service nodeports; NOTE: this must be the last rule in this chain"
	BlockLocalnet                          // "block incoming localnet connections"
)

var sharedFormats = map[SharedRole]string{
	ServicePortals:       "%s service portals",
	ExternallyVisible:    "%s externally-visible service portals",
	HealthCheckPorts:     "%s health check service ports",
	ForwardingRules:      "%s forwarding rules",
	ForwardingConntrack:  "%s forwarding conntrack rule",
	LoadBalancerFirewall: "%s load balancer firewall",
	PostroutingRules:     "%s postrouting rules",
	RequiringSNAT:        "%s service traffic requiring SNAT",
	NodePortsLast:        "%s service nodeports; NOTE: this must be the last rule in this chain",
	BlockLocalnet:        "block incoming localnet connections",
}

// Shared writes the comment of a shared rule in the prefix's product word.
func (v Vocab) Shared(role SharedRole) string {
	f := sharedFormats[role]
	if !strings.Contains(f, "%s") {
		return f
	}
	return fmt.Sprintf(f, v.Product())
}

// Parsed is what a comment says about its rule.
type Parsed struct {
	// Shared: the rule serves every service (SERVICES' jump to NODEPORTS,
	// the built-in jumps, ...), whatever the prefix's product word.
	Shared bool
	// Role and Service ("ns/name"), Port (the port name, "" for an
	// unnamed port) and Extra (an endpoint or a chain) of a per-service
	// comment; Role is NoRole for an empty or shared comment.
	Role    Role
	Service string
	Port    string
	Extra   string
}

type commentPattern struct {
	role Role
	re   *regexp.Regexp
}

var (
	sharedComments = map[string]bool{}
	// rolePatterns are tried in order: the catch-all PortRule last.
	rolePatterns []commentPattern
)

func init() {
	for _, product := range []string{"kubernetes", "svcnat"} {
		for _, f := range sharedFormats {
			if strings.Contains(f, "%s") {
				f = fmt.Sprintf(f, product)
			}
			sharedComments[f] = true
		}
	}
	// Names never hold white space (config refuses it), so a name is \S+.
	for _, r := range []Role{ClusterIP, ExternalIP, LoadBalancerIP, HealthCheckNodePort, NoEndpoints, NoLocalEndpoints,
		EndpointChoice, NotAccepted, OtherTrafficDropped, ExternalMasquerade, PodShortCircuit, LocalMasquerade,
		LocalShortCircuit, PortRule} {
		q := regexp.QuoteMeta(roleFormats[r])
		q = strings.ReplaceAll(q, `%\[1\]s`, `(\S+)`)
		q = strings.ReplaceAll(q, `%\[2\]s`, `(\S+)`)
		rolePatterns = append(rolePatterns, commentPattern{role: r, re: regexp.MustCompile("^" + q + "$")})
	}
}

// ParseComment reads a rule comment back. Comments are the only place a
// live dump names services: chain names are hashes.
func ParseComment(c string) Parsed {
	if c == "" {
		return Parsed{}
	}
	if sharedComments[c] {
		return Parsed{Shared: true}
	}
	for _, p := range rolePatterns {
		m := p.re.FindStringSubmatch(c)
		if m == nil {
			continue
		}
		out := Parsed{Role: p.role}
		out.Service, out.Port, _ = strings.Cut(m[1], ":")
		if len(m) > 2 {
			out.Extra = m[2]
		}
		return out
	}
	return Parsed{}
}

// CommentService returns the service ("ns/name") a comment names, or ""
// for a shared or foreign comment.
func CommentService(c string) string { return ParseComment(c).Service }
