package config

import (
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// endpoint builds one Endpoint of decl's service, applying defaults. seen
// holds the addresses of the service's earlier endpoints: one address is
// one endpoint, as in an EndpointSlice. It returns nil when the address is
// unusable, so that nothing downstream keys on a zero address.
func (d *decoder) endpoint(r *rawEndpoint, decl *svcDecl, fam families, seen map[netip.Addr]hcl.Range) *Endpoint {
	ep := &Endpoint{Ready: true, Serving: true, DeclRange: r.DefRange}

	addrOK := false
	switch v, s := d.str(r.Address); s {
	case set:
		addrs, ok := d.addrs("address", []item{{S: v, Range: r.Address.Range}}, true)
		if !ok {
			break
		}
		a := addrs[0].Addr
		if fam.known && !fam.has(a) {
			d.familyMismatch(r.Address.Range, "address", a.String(), a.Is4())
			break
		}
		if first, dup := seen[a]; dup {
			d.errorf(r.Address.Range, "duplicate endpoint address",
				"Endpoint %s is already listed at %s; merge the two endpoint blocks.", a, pos(first))
			break
		}
		seen[a] = r.Address.Range
		ep.Address = a
		addrOK = true
	case unset:
		subject := r.DefRange
		if r.Address != nil {
			subject = r.Address.Range
		}
		d.errorf(subject, "missing address", `An endpoint block needs the backend's IP, e.g. address = "10.64.2.4".`)
	}

	if v, s := d.str(r.Node); s == set {
		if !ValidNodeName(v) {
			d.errorf(r.Node.Range, "invalid node name", "node %q: %s.", v, nodeNameRule)
		}
		ep.Node = v
	}

	if v, s := d.flag(r.Ready); s == set {
		ep.Ready = v
	}
	if v, s := d.flag(r.Serving); s == set {
		ep.Serving = v
	}
	if v, s := d.flag(r.Terminating); s == set {
		ep.Terminating = v
	}
	d.conditions(r, ep)
	d.endpointPorts(r, ep, decl)

	if !addrOK {
		return nil
	}
	return ep
}

// conditions refuses the flag combinations an EndpointSlice cannot hold:
// kube-proxy reads ready as "serving and not terminating", so a ready
// endpoint that is terminating or not serving would be used as fully
// ready, which is surely not what was meant. Since ready defaults to true,
// the usual cause is setting terminating or serving alone.
func (d *decoder) conditions(r *rawEndpoint, ep *Endpoint) {
	if !ep.Ready {
		return
	}
	pick := func(a *hcl.Attribute) hcl.Range {
		if a != nil {
			return a.Range
		}
		if r.Ready != nil {
			return r.Ready.Range
		}
		return r.DefRange
	}
	switch {
	case ep.Terminating:
		d.errorf(pick(r.Terminating), "ready endpoint marked terminating",
			"A terminating endpoint is not ready (kube-proxy uses it only as a fallback while it still serves); add ready = false.")
	case !ep.Serving:
		d.errorf(pick(r.Serving), "ready endpoint not serving",
			"A ready endpoint is always serving; set ready = false, or remove serving = false.")
	}
}

// endpointPorts decodes an endpoint's per-port target overrides: each key
// names a port of the service ("" the unnamed one), once.
func (d *decoder) endpointPorts(r *rawEndpoint, ep *Endpoint, decl *svcDecl) {
	overrides, s := d.portMap(r.Ports)
	if s != set {
		return
	}
	names := make([]string, 0, len(decl.ports))
	known := map[string]bool{}
	for _, pd := range decl.ports {
		if !known[pd.port.Name] {
			known[pd.port.Name] = true
			names = append(names, pd.port.Name)
		}
	}
	if len(overrides) > 0 {
		ep.Ports = make(map[string]int, len(overrides))
	}
	for _, o := range overrides {
		switch _, dup := ep.Ports[o.Name]; {
		case dup:
			d.errorf(o.KeyRange, "duplicate key in ports", "ports sets %q twice; remove one.", o.Name)
			continue
		case !known[o.Name]:
			d.errorf(o.KeyRange, "unknown port name in ports",
				"ports key %q names no port of service %q; its ports are %s.", o.Name, decl.svc.Name, portNameList(names))
		}
		if o.Port < minPort || o.Port > maxPort {
			d.errorf(o.ValueRange, "port out of range",
				"ports[%q] is %d; a port must be between %d and %d.", o.Name, o.Port, minPort, maxPort)
		}
		ep.Ports[o.Name] = o.Port
	}
}

// portNameList renders port names for a Detail, "" as (unnamed).
func portNameList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = `"` + n + `"`
		if n == "" {
			out[i] = `"" (unnamed)`
		}
	}
	return strings.Join(out, ", ")
}

// MaxServiceEndpoints bounds a service's endpoints, each counted once per
// port of the service: a service with two ports may have 2,500. Each
// (endpoint, port) pair is one rule of the service's chains and one
// endpoint chain. Every new connection walks the rules one by one
// (-m statistic picks an endpoint), and iptables-nft-restore 1.8.9 loads
// the jumps of one transaction in time that grows with the square of
// their number: an endpoint change rewrites the service's chains in one
// transaction, which took 0.6 s for 5,000 endpoints, 2.9 s for 10,000 and
// was killed after 13 minutes for 100,000 (docs/PERFORMANCE.md).
// Kubernetes' scalability thresholds name 250 endpoints per service.
const MaxServiceEndpoints = 5000

// maxEndpoints is how many endpoint blocks a service with ports port
// blocks may have (a service without ports is refused on its own).
func maxEndpoints(ports int) int { return MaxServiceEndpoints / max(ports, 1) }

// tooManyEndpoints reports a service over MaxServiceEndpoints, once, at
// r, its first endpoint block over the limit; n is how many it has.
func (d *decoder) tooManyEndpoints(r *rawEndpoint, decl *svcDecl, n int) {
	const why = "Every new connection walks a service's endpoint rules one by one, and iptables-nft rewrites them in time that grows with the square of their number. Split the service into several."
	ports := len(decl.ports)
	if ports <= 1 {
		d.errorf(r.DefRange, "too many endpoints",
			"Service %q has %d endpoints; svcnat allows at most %d (this endpoint block is number %d). %s",
			decl.svc.Name, n, MaxServiceEndpoints, maxEndpoints(ports)+1, why)
		return
	}
	d.errorf(r.DefRange, "too many endpoints",
		"Service %q has %d endpoints on %d ports, %d endpoint rules (one per endpoint and port); svcnat allows at most %d, so %d endpoints here (this endpoint block is number %d). %s",
		decl.svc.Name, n, ports, n*ports, MaxServiceEndpoints, maxEndpoints(ports), maxEndpoints(ports)+1, why)
}
