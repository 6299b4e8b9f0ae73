package config

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/hcl/v2"
)

// frontendKey is what kube-proxy matches a service port on: destination
// address, port and protocol. Two service ports with one key would shadow
// each other in KUBE-SERVICES.
type frontendKey struct {
	addr  netip.Addr
	port  int
	proto string
}

// nodePortKey is what KUBE-NODEPORTS matches on.
type nodePortKey struct {
	port  int
	proto string
}

// owner is the first user of a key, for the "already used by" detail.
type owner struct {
	decl  *svcDecl
	svc   string
	port  *portDecl // nil for a health check node port
	where hcl.Range
}

// acrossServices runs the checks that compare services with each other,
// in source order, so the later of two clashing declarations is the one
// reported, with a pointer to the earlier.
func (d *decoder) acrossServices(decls []*svcDecl) {
	names := map[string]hcl.Range{}
	frontends := map[frontendKey]owner{}
	nodePorts := map[nodePortKey]owner{}

	for _, decl := range decls {
		name := decl.svc.Name
		if first, dup := names[name]; dup {
			d.errorf(decl.nameRange, "duplicate service name",
				"Service %q is already defined at %s; rename one or merge the two blocks.", name, pos(first))
		} else {
			names[name] = decl.nameRange
		}

		for _, pd := range decl.ports {
			if !pd.portOK {
				continue
			}
			p := pd.port
			for _, a := range decl.frontends {
				k := frontendKey{a, p.Port, p.Protocol}
				o, dup := frontends[k]
				if !dup {
					frontends[k] = owner{decl: decl, svc: decl.svc.Name, port: pd, where: pd.portRange}
					continue
				}
				if o.port == pd {
					continue // the same address listed as cluster and external IP
				}
				by := fmt.Sprintf("service %q", o.svc)
				if o.decl == decl {
					by = "another port of this service"
				}
				d.errorf(pd.portRange, "duplicate service address and port",
					"%s is already served by %s (port at %s); change the port or the address.",
					endpointString(a, p.Port, p.Protocol), by, pos(o.where))
				break // one report per port block is enough to act on
			}

			if p.NodePort != 0 && pd.nodePortRange != nil {
				d.claimNodePort(nodePorts, nodePortKey{p.NodePort, p.Protocol},
					owner{decl: decl, svc: decl.svc.Name, port: pd, where: *pd.nodePortRange})
			}
		}
		// kube-proxy accepts health checks in KUBE-NODEPORTS by TCP port,
		// so the health check node port must not clash with a TCP node port.
		if hc := decl.svc.HealthCheckNodePort; hc != 0 && decl.hcRange != nil {
			d.claimNodePort(nodePorts, nodePortKey{hc, ProtoTCP},
				owner{decl: decl, svc: decl.svc.Name, where: *decl.hcRange})
		}
	}
}

func (d *decoder) claimNodePort(used map[nodePortKey]owner, k nodePortKey, o owner) {
	first, dup := used[k]
	if !dup {
		used[k] = o
		return
	}
	what := "node port"
	if first.port == nil {
		what = "health check node port"
	}
	d.errorf(o.where, "duplicate node port",
		"Node port %d/%s is already the %s of service %q at %s; node ports are unique per protocol across all services.",
		k.port, k.proto, what, first.svc, pos(first.where))
}

// endpointString renders an address, port and protocol as 10.0.0.1:80/TCP
// or [fd00::1]:80/TCP.
func endpointString(a netip.Addr, port int, proto string) string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(a, uint16(port)), proto)
}
