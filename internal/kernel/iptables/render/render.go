// Package render turns a validated configuration into the iptables rules
// that kube-proxy's iptables mode would write for the same Services and
// EndpointSlices: same chain names (hashes), comments, match order,
// probabilities and affinity flags. With chain prefix "KUBE" the output is
// kube-proxy's, line for line; another prefix replaces "KUBE" in every chain
// name and "kubernetes" by "svcnat" in comments.
//
// What to write for each service port (which endpoints serve which
// traffic, what is on this node, what is rejected or dropped) is decided by
// the service model, package service, which every backend shares; this
// package gives those decisions kube-proxy's chain names, comments and rule
// arguments. Rendering is pure: small functions, one per service feature,
// under a short loop over the model's ports. The package never runs a
// binary, never reads the kernel and never prints.
//
// Differences from kube-proxy, all deliberate:
//   - Services are rendered in name order, ports in name order, endpoints in
//     kube-proxy's byEndpoint (ip:port string) order; kube-proxy walks a Go
//     map, so its order of services in KUBE-SERVICES changes every sync.
//   - No -m nfacct match is ever written. kube-proxy adds one to the
//     KUBE-FORWARD INVALID drop, and writes an extra "-d 127.0.0.0/8 ...
//     -m nfacct" KUBE-NODEPORTS rule per node port, only when it could
//     create its nfacct counters; svcnat creates no nfacct objects, which is
//     the case kube-proxy handles by leaving them out.
//   - The INVALID drop in KUBE-FORWARD is always written (kube-proxy leaves
//     it out when nf_conntrack_tcp_be_liberal is set).
//   - The jump rules from the built-in chains, which kube-proxy inserts with
//     "iptables -I <chain> 1" outside iptables-restore, are rules of the
//     built-in chains here, in the top-down order those inserts leave on a
//     host that had none of them.
//   - KUBE-FIREWALL and its INPUT/OUTPUT jumps (kubelet's anti-martian
//     chain, which kube-proxy also ensures) exist only for IPv4 with
//     localhost node ports enabled, the only case where it has a rule.
//   - No topology hints and no large-cluster periodic cleanup; large-cluster
//     mode itself (comments dropped from the endpoint rules when a family has
//     more than 1000 endpoints) is reproduced.
package render

import (
	"fmt"
	"net/netip"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
	"github.com/svcnat/svcnat/internal/service"
)

// largeClusterEndpointsThreshold is kube-proxy's: above this many endpoints
// in a family, the per-endpoint rules lose their comments.
const largeClusterEndpointsThreshold = 1000

// Options are the facts about this host that rendering depends on
// (RandomFully: --random-fully on the MASQUERADE rule, iptables 1.6.2 and
// later; LocalAddresses: the "-d <ip> -j KUBE-NODEPORTS" rules of
// node_port_addresses).
type Options = backend.RenderOptions

// Result is the rendered rules and an index from chains to services.
// Within a table the built-in chains come first, then the fixed chains,
// then the chains of each service in service and port order.
type Result = backend.Rendered

// Render returns the rules in the form iptables-save prints them back
// (rules.Canonicalize), so that they compare line for line with a live dump.
func Render(cfg *config.Config, opts Options) (*Result, error) {
	res, err := RenderWritten(cfg, opts)
	if err != nil {
		return nil, err
	}
	for fam, rs := range res.Rulesets {
		for _, t := range rs.Tables {
			for _, c := range t.Chains {
				for i, r := range c.Rules {
					cr, err := rules.CanonicalRule(fam, r)
					if err != nil {
						return nil, fmt.Errorf("canonicalizing %s %s rule: %w", fam, t.Name, err)
					}
					c.Rules[i] = cr
				}
			}
		}
	}
	return res, nil
}

// RenderWritten returns the rules with their arguments in the order
// kube-proxy writes them (before iptables normalizes them), the mark
// written as kube-proxy's "%#08x" (0x00004000). Golden tests compare it
// with kube-proxy's own expected output.
func RenderWritten(cfg *config.Config, opts Options) (*Result, error) {
	s := cfg.Settings
	if !config.ValidChainPrefix(s.ChainPrefix) {
		// config refuses such a prefix; a hand-made Config must not
		// produce chain names iptables refuses or another owner's chains.
		return nil, fmt.Errorf("chain prefix %q is not one svcnat may own", s.ChainPrefix)
	}
	if s.MasqueradeBit < 0 || s.MasqueradeBit > 31 {
		return nil, fmt.Errorf("masquerade bit %d is outside 0-31", s.MasqueradeBit)
	}
	m := service.Build(cfg, service.Options{Node: opts.Node, LocalAddresses: opts.LocalAddresses})
	res := &Result{Rulesets: map[backend.Family]*backend.Ruleset{}, ChainService: map[string]string{},
		Shares: map[string]*backend.Shares{}, Modes: map[backend.Family]string{}}
	for _, fam := range backend.Families {
		if fam == backend.IPv6 && !m.IPv6 {
			continue
		}
		b := newBuilder(fam, &s, opts, res.ChainService)
		b.render(m, res.Shares)
		res.Rulesets[fam] = b.rs
		if b.largeCluster {
			res.Modes[fam] = ModeLargeCluster
		}
	}
	return res, nil
}

// ModeLargeCluster is Rendered.Modes' word for large-cluster mode.
const ModeLargeCluster = "large-cluster"

// inFamily reports whether a is of the family fam.
func inFamily(fam backend.Family, a netip.Addr) bool { return service.InFamily(fam == backend.IPv6, a) }

// builder accumulates one family's ruleset.
type builder struct {
	fam          backend.Family
	settings     *config.Settings
	opts         Options
	v            vocab.Vocab
	fixed        fixedChains
	mark         string // the masquerade mark as kube-proxy writes it
	detect       localDetector
	nodePorts    nodePortAddresses
	localhostNP  bool // localhost node ports in effect for this family
	largeCluster bool
	rs           *backend.Ruleset
	filter, nat  *backend.Table
	owner        map[string]string
}

func newBuilder(fam backend.Family, s *config.Settings, opts Options, owner map[string]string) *builder {
	b := &builder{
		fam:       fam,
		settings:  s,
		opts:      opts,
		v:         vocab.For(s.ChainPrefix),
		fixed:     newFixedChains(vocab.For(s.ChainPrefix)),
		mark:      fmt.Sprintf("%#08x", uint32(1)<<uint(s.MasqueradeBit)),
		detect:    newLocalDetector(fam, s.ClusterCIDRs),
		nodePorts: newNodePortAddresses(fam, s.NodePortAddresses),
		rs:        &backend.Ruleset{Family: fam},
		owner:     owner,
	}
	// kube-proxy turns localhost node ports off when --nodeport-addresses
	// excludes 127.0.0.1, and never has them for IPv6.
	b.localhostNP = fam == backend.IPv4 && s.LocalhostNodePorts && b.nodePorts.containsIPv4Loopback
	b.filter = b.rs.EnsureTable(rules.TableFilter)
	b.nat = b.rs.EnsureTable(rules.TableNAT)
	for _, c := range []string{"INPUT", "FORWARD", "OUTPUT"} {
		b.filter.EnsureChain(c)
	}
	for _, c := range []string{"PREROUTING", "OUTPUT", "POSTROUTING"} {
		b.nat.EnsureChain(c)
	}
	f := b.fixed
	for _, c := range []string{f.services, f.externalServices, f.forward, f.nodePorts, f.proxyFirewall} {
		b.filter.EnsureChain(c)
	}
	if b.localhostNP {
		b.filter.EnsureChain(f.firewall)
	}
	for _, c := range []string{f.services, f.nodePorts, f.postrouting, f.markMasq} {
		b.nat.EnsureChain(c)
	}
	return b
}

// render is the short loop: fixed rules, each service port, then the rules
// that must come after every service's.
//
// Large-cluster mode counts the endpoints of every service port of the
// family: those rendered, and with opts.Others those of the services of
// the whole configuration that are not. shares gets each rendered
// service's count.
func (b *builder) render(m *service.Model, shares map[string]*backend.Shares) {
	b.masqueradeRules()
	b.localnetFirewallRule()
	ports := b.servicePorts(m)
	total := 0
	if o := b.opts.Others; o != nil {
		total = o.Endpoints[b.fam]
	}
	for _, sp := range ports {
		total += len(sp.Endpoints)
		sh := shares[sp.svc.Name]
		if sh == nil {
			sh = &backend.Shares{Endpoints: map[backend.Family]int{}}
			shares[sp.svc.Name] = sh
		}
		sh.Endpoints[b.fam] += len(sp.Endpoints)
	}
	b.largeCluster = total > largeClusterEndpointsThreshold
	for _, sp := range ports {
		b.writeServicePort(sp)
	}
	b.nodePortsJumpRules()
	b.forwardRules()
	b.builtinJumpRules()
}

// servicePorts returns the view of every port of every service that has a
// cluster IP in this family, in the model's order: service then port name.
func (b *builder) servicePorts(m *service.Model) []*servicePort {
	var out []*servicePort
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			if inFamily(b.fam, p.ClusterIP) {
				out = append(out, b.newServicePort(p))
			}
		}
	}
	return out
}

// declare creates a per-service chain in t and records its service.
func (b *builder) declare(t *backend.Table, chain string, svc *config.Service) {
	t.EnsureChain(chain)
	b.owner[chain] = svc.Name
}

// add appends a rule whose arguments are the concatenation of parts.
func add(t *backend.Table, chain string, parts ...[]string) {
	var args []string
	for _, p := range parts {
		args = append(args, p...)
	}
	t.Append(backend.Rule{Chain: chain, Args: args})
}

// a is shorthand for a list of arguments.
func a(args ...string) []string { return args }

// comment returns the comment match, as kube-proxy's "-m comment --comment".
func comment(text string) []string { return a("-m", "comment", "--comment", text) }
