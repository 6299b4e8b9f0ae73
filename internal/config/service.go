package config

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

var (
	serviceTypes = []string{TypeClusterIP, TypeNodePort, TypeLoadBalancer}
	policies     = []string{PolicyCluster, PolicyLocal}
	affinities   = []string{AffinityNone, AffinityClientIP}
	protocols    = []string{ProtoTCP, ProtoUDP, ProtoSCTP}
)

const (
	minPort         = 1
	maxPort         = 65535
	maxAffinity     = 86400 // Kubernetes' limit for sessionAffinityConfig.clientIP.timeoutSeconds
	serviceNameRule = `a service name is "name" or "namespace/name", each side lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters`
	portNameRule    = `a port name is lower-case letters, digits, '-' and '.', starts and ends with a letter or digit, and has at most 63 characters`
)

// svcDecl is a decoded service with what the checks across services need:
// which of its values decoded cleanly and the ranges to point at.
type svcDecl struct {
	// raw is the block, while the service is decoded; it is dropped
	// afterwards, with the file's syntax tree.
	raw *rawService
	svc *Service
	// nameRange and hcRange (health_check_node_port, nil when absent) are
	// what the checks across services point at.
	nameRange hcl.Range
	hcRange   *hcl.Range
	// frontends are the cluster, external and load-balancer IPs that
	// decoded cleanly, each once.
	frontends []netip.Addr
	// lbAttrs are load_balancer_ips and load_balancer_source_ranges when
	// they list anything: only a LoadBalancer service may.
	lbAttrs []*hcl.Attribute
	ports   []*portDecl
}

// portDecl is a decoded port block.
type portDecl struct {
	raw    *rawPort // while the service is decoded, as svcDecl.raw
	port   *Port
	portOK bool // Port and Protocol are usable for duplicate checks
	// portRange and nodePortRange (nil when absent) are what the checks
	// across services point at.
	portRange     hcl.Range
	nodePortRange *hcl.Range
}

// families is the set of IP families a service has cluster IPs for.
// known is false when cluster_ips was unusable; family checks are then
// skipped rather than reported against a guess.
type families struct{ has4, has6, known bool }

func (f families) has(a netip.Addr) bool { return (a.Is4() && f.has4) || (a.Is6() && f.has6) }

// service builds a Service from its block, applying defaults and running
// every check that needs only this block (those that need the settings,
// which may come in a later file, are deferred with later). The returned
// declaration holds no part of the file's syntax tree.
func (d *decoder) service(r *rawService) *svcDecl {
	svc := &Service{
		Name:                   r.Name,
		DeclRange:              r.DefRange,
		SessionAffinityTimeout: DefaultSessionAffinityTimeout,
	}
	decl := &svcDecl{raw: r, svc: svc, nameRange: r.NameRange}
	if r.HealthCheckNodePort != nil {
		decl.hcRange = r.HealthCheckNodePort.Range.Ptr()
	}
	if !ValidServiceName(r.Name) {
		d.errorf(r.NameRange, "invalid service name", "service %q: %s.", r.Name, serviceNameRule)
	}
	svc.Type = d.enum(r.Type, TypeClusterIP, serviceTypes, "unknown service type")
	svc.ExternalTrafficPolicy = d.enum(r.ExternalTrafficPolicy, PolicyCluster, policies, "unknown traffic policy")
	svc.InternalTrafficPolicy = d.enum(r.InternalTrafficPolicy, PolicyCluster, policies, "unknown traffic policy")
	svc.SessionAffinity = d.enum(r.SessionAffinity, AffinityNone, affinities, "unknown session affinity")

	fam := d.clusterIPs(decl)
	d.externalAddrs(decl, fam)
	d.typeSpecific(decl)

	if len(r.Ports) == 0 {
		d.errorf(r.DefRange, "service has no ports",
			"Add a port block, e.g. port { port = 80 }; a service without ports has nothing to forward.")
	}
	for _, rp := range r.Ports {
		decl.ports = append(decl.ports, d.port(rp, svc))
	}
	d.portNames(decl)
	sort.SliceStable(svc.Ports, func(i, j int) bool { return svc.Ports[i].Name < svc.Ports[j].Name })
	d.healthCheck(decl)

	seen := map[netip.Addr]hcl.Range{}
	over := maxEndpoints(len(r.Ports))
	for i, re := range r.Endpoints {
		if i == over {
			d.tooManyEndpoints(re, decl, len(r.Endpoints))
		}
		if ep := d.endpoint(re, decl, fam, seen); ep != nil {
			svc.Endpoints = append(svc.Endpoints, ep)
		}
	}
	decl.raw, decl.lbAttrs = nil, nil
	for _, pd := range decl.ports {
		pd.raw = nil
	}
	return decl
}

// enum evaluates an attribute that takes one of a few words. It returns def
// when the attribute is unset and "" when it is unusable (reported), which
// no check matches, so checks that depend on it stay quiet.
func (d *decoder) enum(a *hcl.Attribute, def string, allowed []string, summary string) string {
	v, st := d.str(a)
	switch st {
	case unset:
		return def
	case bad:
		return ""
	}
	for _, w := range allowed {
		if v == w {
			return v
		}
	}
	hint := ""
	if s := suggest(v, allowed); s != "" {
		hint = fmt.Sprintf(" Did you mean %q?", s)
	}
	d.errorf(a.Range, summary, "%s %q is not one of %s.%s", a.Name, v, quoteList(allowed), hint)
	return ""
}

// clusterIPs decodes cluster_ips: at least one, at most one per family.
func (d *decoder) clusterIPs(decl *svcDecl) families {
	r, svc := decl.raw, decl.svc
	items, st := d.strList(r.ClusterIPs)
	if st == bad {
		return families{}
	}
	if len(items) == 0 {
		subject := r.DefRange
		if r.ClusterIPs != nil {
			subject = r.ClusterIPs.Range
		}
		d.errorf(subject, "service has no cluster IP",
			`Give the service its virtual IP, e.g. cluster_ips = ["10.32.0.10"] (dual-stack: one IPv4 and one IPv6 address).`)
		return families{}
	}
	addrs, ok := d.addrs("cluster_ips", items, true)
	var fam families
	var first [2]*addrItem // by family: 0 IPv4, 1 IPv6
	for i := range addrs {
		a := &addrs[i]
		f := 1
		if a.Addr.Is4() {
			f = 0
		}
		if first[f] != nil {
			d.errorf(a.Range, "two cluster IPs of one family",
				"cluster_ips holds one address per IP family (dual-stack: one IPv4 and one IPv6), and %s at %s is already %s; remove one.",
				first[f].Addr, pos(first[f].Range), familyName(a.Addr.Is4()))
			ok = false
			continue
		}
		first[f] = a
		svc.ClusterIPs = append(svc.ClusterIPs, a.Addr)
		decl.frontends = append(decl.frontends, a.Addr)
	}
	fam.has4, fam.has6, fam.known = first[0] != nil, first[1] != nil, ok
	return fam
}

// externalAddrs decodes external_ips, load_balancer_ips and
// load_balancer_source_ranges: each address must be of a family the
// service has a cluster IP for, since its rules go to that family's table.
func (d *decoder) externalAddrs(decl *svcDecl, fam families) {
	r, svc := decl.raw, decl.svc
	decode := func(a *hcl.Attribute) []netip.Addr {
		items, st := d.strList(a)
		if st != set {
			return nil
		}
		if a == r.LoadBalancerIPs && len(items) > 0 {
			decl.lbAttrs = append(decl.lbAttrs, a)
		}
		addrs, _ := d.addrs(a.Name, items, true)
		var out []netip.Addr
		for _, ai := range addrs {
			if fam.known && !fam.has(ai.Addr) {
				d.familyMismatch(ai.Range, a.Name, ai.Addr.String(), ai.Addr.Is4())
				continue
			}
			out = append(out, ai.Addr)
			if !contains(decl.frontends, ai.Addr) {
				decl.frontends = append(decl.frontends, ai.Addr)
			}
		}
		return out
	}
	svc.ExternalIPs = decode(r.ExternalIPs)
	svc.LoadBalancerIPs = decode(r.LoadBalancerIPs)

	if items, st := d.strList(r.LoadBalancerSourceRanges); st == set {
		if len(items) > 0 {
			decl.lbAttrs = append(decl.lbAttrs, r.LoadBalancerSourceRanges)
		}
		ps, _ := d.prefixes("load_balancer_source_ranges", items)
		for _, p := range ps {
			is4 := p.Prefix.Addr().Is4()
			if fam.known && !fam.has(p.Prefix.Addr()) {
				d.familyMismatch(p.Range, "load_balancer_source_ranges", p.Prefix.String(), is4)
				continue
			}
			svc.LoadBalancerSourceRanges = append(svc.LoadBalancerSourceRanges, p.Prefix)
		}
	}
}

func (d *decoder) familyMismatch(subject hcl.Range, attr, val string, is4 bool) {
	f := familyName(is4)
	d.errorf(subject, "IP family mismatch",
		"%s: %s is %s, but the service has no %s cluster IP; add one to cluster_ips or remove this address.", attr, val, f, f)
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// typeSpecific checks the attributes that only some service types or
// policies allow, and decodes the numbers among them.
func (d *decoder) typeSpecific(decl *svcDecl) {
	r, svc := decl.raw, decl.svc
	if svc.Type != "" && svc.Type != TypeLoadBalancer {
		for _, a := range decl.lbAttrs {
			d.errorf(a.Range, a.Name+" needs type LoadBalancer",
				`%s applies to load-balancer ingress IPs only; set type = "LoadBalancer" or remove it.`, a.Name)
		}
	}
	if svc.Type == TypeClusterIP && svc.ExternalTrafficPolicy == PolicyLocal && r.ExternalTrafficPolicy != nil && len(svc.ExternalIPs) == 0 {
		d.errorf(r.ExternalTrafficPolicy.Range, "external_traffic_policy Local on an internal service",
			"external_traffic_policy applies to traffic from outside the node (node ports, external and load-balancer IPs), and this ClusterIP service has none; remove it or use internal_traffic_policy.")
	}

	if v, s := d.num(r.HealthCheckNodePort); s == set && v != 0 {
		a := r.HealthCheckNodePort
		if v < minPort || v > maxPort {
			d.portOutOfRange(a.Range, a.Name, v)
		} else {
			d.checkNodePortRange(a.Range, a.Name, v)
		}
		// Like kube-proxy (apiservice.NeedsHealthCheck), the renderer
		// serves the health check node port of a LoadBalancer service
		// with external_traffic_policy Local only; anywhere else it would
		// be accepted and silently do nothing. (An unusable type, "", is
		// already reported.)
		switch {
		case svc.Type != "" && svc.Type != TypeLoadBalancer:
			d.errorf(a.Range, "health_check_node_port needs type LoadBalancer",
				`A health check node port answers load balancers probing which nodes have local endpoints, so it applies to type = "LoadBalancer" with external_traffic_policy = "Local" only, and this service is %q; set both, or remove health_check_node_port.`, svc.Type)
		case svc.ExternalTrafficPolicy == PolicyCluster:
			d.errorf(a.Range, "health_check_node_port without external_traffic_policy Local",
				`Only with external_traffic_policy = "Local" does a node's health depend on its local endpoints; set it, or remove health_check_node_port.`)
		}
		svc.HealthCheckNodePort = v
	}

	if v, s := d.num(r.SessionAffinityTimeout); s == set {
		a := r.SessionAffinityTimeout
		if v < 1 || v > maxAffinity {
			d.errorf(a.Range, "session_affinity_timeout out of range",
				"session_affinity_timeout is %d; it must be between 1 and %d seconds (the default is %d).", v, maxAffinity, DefaultSessionAffinityTimeout)
		}
		if svc.SessionAffinity == AffinityNone {
			d.errorf(a.Range, "session_affinity_timeout without ClientIP affinity",
				`The timeout applies to session_affinity = "ClientIP" only; set that, or remove session_affinity_timeout.`)
		}
		svc.SessionAffinityTimeout = v
	}
}

func (d *decoder) portOutOfRange(subject hcl.Range, attr string, v int) {
	d.errorf(subject, attr+" out of range", "%s is %d; a port must be between %d and %d.", attr, v, minPort, maxPort)
}

func (d *decoder) outsideNodePortRange(subject hcl.Range, attr string, v int, r PortRange) {
	d.errorf(subject, attr+" outside node_port_range",
		"%s is %d, outside node_port_range %d-%d; pick a port in the range or widen node_port_range in the settings block.",
		attr, v, r.Min, r.Max)
}

// port builds one Port and runs the checks that need only its block.
func (d *decoder) port(r *rawPort, svc *Service) *portDecl {
	p := &Port{DeclRange: r.DefRange}
	pd := &portDecl{raw: r, port: p, portOK: true}
	if r.Port != nil {
		pd.portRange = r.Port.Range
	}
	if r.NodePort != nil {
		pd.nodePortRange = r.NodePort.Range.Ptr()
	}
	svc.Ports = append(svc.Ports, p)

	if v, s := d.str(r.Name); s == set {
		if v != "" && !ValidName(v) {
			d.errorf(r.Name.Range, "invalid port name", "port name %q: %s.", v, portNameRule)
		}
		p.Name = v
	}
	p.Protocol = d.enum(r.Protocol, ProtoTCP, protocols, "unknown protocol")
	if p.Protocol == "" {
		pd.portOK = false
	}

	switch v, s := d.num(r.Port); s {
	case set:
		p.Port = v
		if v < minPort || v > maxPort {
			d.portOutOfRange(r.Port.Range, "port", v)
			pd.portOK = false
		}
	case unset:
		subject := r.DefRange
		if r.Port != nil {
			subject = r.Port.Range
		}
		d.errorf(subject, "missing port", "A port block needs the service port, e.g. port = 80.")
		pd.portOK = false
	default:
		pd.portOK = false
	}

	p.TargetPort = p.Port
	if v, s := d.num(r.TargetPort); s == set {
		p.TargetPort = v
		if v < minPort || v > maxPort {
			d.portOutOfRange(r.TargetPort.Range, "target_port", v)
		}
	}

	if v, s := d.num(r.NodePort); s == set && v != 0 {
		a := r.NodePort
		p.NodePort = v
		switch {
		case svc.Type == TypeClusterIP:
			d.errorf(a.Range, "node_port on a ClusterIP service",
				`A ClusterIP service is reached only at its cluster IP; set type = "NodePort" (or "LoadBalancer"), or remove node_port.`)
		case v < minPort || v > maxPort:
			d.portOutOfRange(a.Range, "node_port", v)
		default:
			d.checkNodePortRange(a.Range, "node_port", v)
		}
	} else if s != bad && svc.Type == TypeNodePort {
		subject := r.DefRange
		if r.NodePort != nil {
			subject = r.NodePort.Range
		}
		d.later(func(st *Settings, _ bool) {
			d.errorf(subject, "NodePort service port without node_port",
				"svcnat allocates no node ports; give this port one, e.g. node_port = %d (in node_port_range %d-%d).",
				st.NodePortRange.Min, st.NodePortRange.Min, st.NodePortRange.Max)
		})
	}
	return pd
}

// checkNodePortRange refuses, once the settings are known, a node port
// outside node_port_range (unless node_port_range itself was unusable).
func (d *decoder) checkNodePortRange(subject hcl.Range, attr string, v int) {
	d.later(func(st *Settings, nodePortsOK bool) {
		if nodePortsOK && !st.NodePortRange.Contains(v) {
			d.outsideNodePortRange(subject, attr, v, st.NodePortRange)
		}
	})
}

// portNames checks names across a service's ports: every port of a
// multi-port service is named (kube-proxy tells them apart by name), and
// no name is used twice.
func (d *decoder) portNames(decl *svcDecl) {
	seen := map[string]hcl.Range{}
	multi := len(decl.ports) > 1
	for _, pd := range decl.ports {
		name := pd.port.Name
		subject := pd.raw.DefRange
		if pd.raw.Name != nil {
			subject = pd.raw.Name.Range
		}
		if name == "" && multi {
			d.errorf(subject, "unnamed port in a multi-port service",
				`Service %q has %d ports, so each needs a name, e.g. name = "http".`, decl.svc.Name, len(decl.ports))
			continue
		}
		if first, dup := seen[name]; dup {
			d.errorf(subject, "duplicate port name",
				"Port name %q is already used at %s; port names are unique within a service.", name, pos(first))
			continue
		}
		seen[name] = subject
	}
}
