package backend

import (
	"net/netip"
	"sort"
)

// Describer is the part of a backend that knows what its objects mean:
// which service each serves, for the views and for UDP conntrack cleanup,
// and which objects svcnat could have written, for a saved plan. It is
// pure: it reads rules it is given and never the kernel. The planner diffs
// objects without knowing any of this.
type Describer interface {
	// Describe attributes a plan's changes to services and says what
	// changes for each service, in the things an operator names.
	Describe(p Planned) *Description
	// Inventory groups the owned objects of live (whole dumps) by the
	// service they serve.
	Inventory(prefix string, live map[Family]*Ruleset) *Inventory
	// StaleUDP lists the UDP flows that the plan's removed endpoints
	// leave in conntrack.
	StaleUDP(p Planned) []StaleFlow
	// CheckDesired refuses desired objects that svcnat, with chain prefix
	// prefix, could not have written: a saved plan's desired rules are
	// data whoever can write the file chooses, and apply writes them as
	// root. The error names the first such object.
	CheckDesired(prefix string, desired map[Family]*Ruleset) error
}

// Planned is what a Describer reads of a plan (planner.Plan.Planned).
type Planned struct {
	Prefix  string
	Desired map[Family]*Ruleset // owned objects wanted
	Live    map[Family]*Ruleset // owned objects found
	Changes []ChainChange
	// ChainService maps the desired per-service chains to the services
	// they serve, when the renderer said so; nil otherwise (a saved plan's
	// or a rollback's), when the objects say it themselves.
	ChainService map[string]string
}

// Description is a plan in an operator's words: whose each changed chain
// is, and what changes for each service.
type Description struct {
	Services []ServiceChange // sorted by name
	Chains   []ChainOwner    // one per change of the plan, in its order
}

// ChainOwner says whose a changed chain is.
type ChainOwner struct {
	Service string // for ScopeService only
	Scope   Scope
}

// Scope says whose a changed chain is: one service's, every service's
// (shared), or nobody's that svcnat can tell.
type Scope string

// The scopes of a changed chain.
const (
	// ScopeService: the chain serves one service (ChainOwner.Service).
	ScopeService Scope = "service"
	// ScopeShared: a built-in chain (its jump rules) or one of the chains
	// every service goes through: SERVICES, NODEPORTS, MARK-MASQ, ...
	ScopeShared Scope = "shared"
	// ScopeUnknown: a per-service chain whose service its rules do not
	// tell (no comments and no jump into it that names one, or a desired
	// and a live attribution that differ).
	ScopeUnknown Scope = "unknown"
)

// ServiceChange is what a plan does to one service.
type ServiceChange struct {
	Name    string
	Action  Action   // Create and Delete: the whole service; Update: Details say what
	Details []Detail // for Update only, endpoints first
}

// Detail is one thing that changes for a service.
type Detail struct {
	Subject Subject
	// Value names the subject: an endpoint "10.64.1.4:8080", an address
	// "10.32.0.1:80/tcp", a port "30080/tcp", a chain kind (SubjectChain)
	// or a chain name (SubjectChainRules).
	Value  string
	Change DetailChange
}

// Subject is what a Detail is about.
type Subject int

// The subjects of details.
const (
	SubjectEndpoint             Subject = iota + 1 // an endpoint, Value "ip:port"
	SubjectClusterIP                               // Value "ip:port/proto"
	SubjectExternalIP                              // Value "ip:port/proto"
	SubjectLoadBalancerIP                          // Value "ip:port/proto"
	SubjectNodePort                                // Value "port/proto"
	SubjectHealthCheckNodePort                     // Value "port"
	SubjectNoEndpointsReject                       // the REJECT of a service without endpoints
	SubjectNoLocalEndpointsDrop                    // the DROP of a Local policy without local endpoints
	SubjectSourceRanges                            // load-balancer source ranges
	SubjectChain                                   // a per-service chain, Value its kind ("SVC", "SVL", "EXT", "FW")
	SubjectChainRules                              // rules of another chain, Value its name
)

// DetailChange says how a Detail's subject changes.
type DetailChange int

// The changes.
const (
	DetailAdded DetailChange = iota + 1
	DetailRemoved
	DetailChanged
)

// Located is a rule with the family and table it lives in.
type Located struct {
	Family Family
	Table  string
	Rule   Rule
}

// Inventory is what svcnat owns in the live rules, grouped by service;
// Shared holds the rules that serve every service.
type Inventory struct {
	Chains   int // owned chains (built-in chains not counted)
	Rules    int
	Services map[string][]Located
	Shared   []Located
}

// Names returns the services in the inventory, sorted.
func (inv *Inventory) Names() []string {
	out := make([]string, 0, len(inv.Services))
	for n := range inv.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// StaleFlow names UDP conntrack entries to delete after an apply: those a
// service address (VIP:Port) or a node port (NodePort) DNATed to an
// endpoint the service no longer has. UDP has no connection to end, so
// without this a client keeps sending to the old endpoint for as long as
// it keeps the flow alive (kube-proxy's conntrack cleanup does the same).
type StaleFlow struct {
	Family   Family
	Service  string
	VIP      netip.Addr // the service address; the zero Addr for a node port
	Port     int        // the service port
	NodePort int        // the node port, when VIP is the zero Addr
	Endpoint netip.Addr // the endpoint the entries were DNATed to
}

// StaleFlows are family f's flows that removed UDP endpoints leave: for
// each endpoint of a service in before (service → "ip:port" set) and not
// in after, one flow per address and port of the service in addrs
// (service → flows with VIP, Port and NodePort set). Each backend's
// Describer reads the three from its own objects; this is the rest,
// shared.
func StaleFlows(f Family, before, after map[string]map[string]bool, addrs map[string][]StaleFlow) []StaleFlow {
	var out []StaleFlow
	for svc, eps := range before {
		for ep := range eps {
			if after[svc][ep] {
				continue
			}
			ap, err := netip.ParseAddrPort(ep)
			if err != nil {
				continue
			}
			for _, a := range addrs[svc] {
				fl := a
				fl.Family, fl.Service, fl.Endpoint = f, svc, ap.Addr()
				out = append(out, fl)
			}
		}
	}
	return out
}

// SortStaleFlows orders flows by service, endpoint, address and port, the
// order conntrack cleanup reports them in.
func SortStaleFlows(flows []StaleFlow) {
	sort.Slice(flows, func(i, j int) bool {
		a, b := flows[i], flows[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Endpoint != b.Endpoint {
			return a.Endpoint.Less(b.Endpoint)
		}
		if a.VIP != b.VIP {
			return a.VIP.Less(b.VIP)
		}
		return a.Port+a.NodePort < b.Port+b.NodePort
	})
}
