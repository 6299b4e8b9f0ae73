package render

import (
	"net/netip"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
	"github.com/svcnat/svcnat/internal/service"
)

// localDetector is kube-proxy's ClusterCIDR LocalTrafficDetector: traffic
// from the cluster (pod) CIDR is "local" (from a pod). kube-proxy supports
// one CIDR per family, so the first CIDR of the family is used and any
// further ones are ignored. Without one the detector is not implemented:
// no masquerade rule in the SVC chain and no pod short-circuit in EXT.
type localDetector struct {
	ifLocal, ifNotLocal []string
}

func newLocalDetector(fam backend.Family, cidrs []netip.Prefix) localDetector {
	for _, c := range cidrs {
		if service.InFamily(fam == backend.IPv6, c.Addr()) {
			s := c.Masked().String()
			return localDetector{ifLocal: a("-s", s), ifNotLocal: a("!", "-s", s)}
		}
	}
	return localDetector{}
}

func (d localDetector) implemented() bool { return d.ifLocal != nil }

// nodePortAddresses is the family's node port addresses (the service
// model's), and whether they hold 127.0.0.1, which decides iptables'
// localhost node ports.
type nodePortAddresses struct {
	service.NodePortAddresses
	containsIPv4Loopback bool
}

func newNodePortAddresses(fam backend.Family, cidrs []netip.Prefix) nodePortAddresses {
	n := nodePortAddresses{NodePortAddresses: service.NodePorts(fam == backend.IPv6, cidrs)}
	loopback := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	for _, c := range n.CIDRs {
		if c.Addr().Is4() && (c.Addr().IsLoopback() || c.Contains(loopback)) {
			n.containsIPv4Loopback = true
		}
	}
	return n
}

// masqueradeRules fills KUBE-POSTROUTING and KUBE-MARK-MASQ: packets marked
// for masquerade are SNATed once, the mark cleared so a packet that goes
// through the stack again is not masqueraded twice.
func (b *builder) masqueradeRules() {
	f, m := b.fixed, b.mark
	add(b.nat, f.postrouting, a("-m", "mark", "!", "--mark", m+"/"+m, "-j", "RETURN"))
	add(b.nat, f.postrouting, a("-j", "MARK", "--xor-mark", m))
	masq := a("-j", "MASQUERADE")
	if b.opts.RandomFully {
		masq = append(masq, "--random-fully")
	}
	add(b.nat, f.postrouting, comment(b.v.Shared(vocab.RequiringSNAT)), masq)
	add(b.nat, f.markMasq, a("-j", "MARK", "--or-mark", m))
}

// localnetFirewallRule blocks the route_localnet hole (kubernetes issue
// #90259) when node ports are served on 127.0.0.0/8.
func (b *builder) localnetFirewallRule() {
	if !b.localhostNP {
		return
	}
	add(b.filter, b.fixed.firewall, comment(b.v.Shared(vocab.BlockLocalnet)),
		a("-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"))
}

// nodePortsJumpRules ends KUBE-SERVICES with the jump to KUBE-NODEPORTS. It
// must be the last rule: every more specific "-d IP --dport" rule wins first.
func (b *builder) nodePortsJumpRules() {
	f := b.fixed
	c := comment(b.v.Shared(vocab.NodePortsLast))
	if b.nodePorts.MatchAll {
		dst := a("-m", "addrtype", "--dst-type", "LOCAL")
		switch {
		case b.fam == backend.IPv6:
			dst = append(dst, "!", "-d", "::1/128")
		case !b.localhostNP:
			dst = append(dst, "!", "-d", "127.0.0.0/8")
		}
		add(b.nat, f.services, c, dst, a("-j", f.nodePorts))
		return
	}
	for _, ip := range b.nodePorts.NodeIPs(b.opts.LocalAddresses) {
		if ip.IsLoopback() && (b.fam == backend.IPv6 || !b.localhostNP) {
			continue
		}
		add(b.nat, f.services, c, a("-d", ip.String(), "-j", f.nodePorts))
	}
}

// forwardRules fill KUBE-FORWARD so that service traffic is forwarded on
// hosts whose FORWARD policy is DROP. No nfacct match: see the package doc.
func (b *builder) forwardRules() {
	f, m := b.fixed, b.mark
	add(b.filter, f.forward, a("-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"))
	add(b.filter, f.forward, comment(b.v.Shared(vocab.ForwardingRules)), a("-m", "mark", "--mark", m+"/"+m, "-j", "ACCEPT"))
	add(b.filter, f.forward, comment(b.v.Shared(vocab.ForwardingConntrack)), a("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))
}

// jump is one entry of kube-proxy's iptablesJumpChains.
type jump struct {
	nat     bool
	src     string // built-in chain
	dst     string
	comment string
	ctNew   bool // "-m conntrack --ctstate NEW" before the comment
}

// jumps lists kube-proxy's iptablesJumpChains followed by its
// iptablesKubeletJumpChains, in its order.
func (b *builder) jumps() []jump {
	f, v := b.fixed, b.v
	js := []jump{
		{src: "INPUT", dst: f.externalServices, comment: v.Shared(vocab.ExternallyVisible), ctNew: true},
		{src: "FORWARD", dst: f.externalServices, comment: v.Shared(vocab.ExternallyVisible), ctNew: true},
		{src: "INPUT", dst: f.nodePorts, comment: v.Shared(vocab.HealthCheckPorts)},
		{src: "FORWARD", dst: f.services, comment: v.Shared(vocab.ServicePortals), ctNew: true},
		{src: "OUTPUT", dst: f.services, comment: v.Shared(vocab.ServicePortals), ctNew: true},
		{src: "FORWARD", dst: f.forward, comment: v.Shared(vocab.ForwardingRules)},
		{src: "INPUT", dst: f.proxyFirewall, comment: v.Shared(vocab.LoadBalancerFirewall), ctNew: true},
		{src: "OUTPUT", dst: f.proxyFirewall, comment: v.Shared(vocab.LoadBalancerFirewall), ctNew: true},
		{src: "FORWARD", dst: f.proxyFirewall, comment: v.Shared(vocab.LoadBalancerFirewall), ctNew: true},
		{nat: true, src: "OUTPUT", dst: f.services, comment: v.Shared(vocab.ServicePortals)},
		{nat: true, src: "PREROUTING", dst: f.services, comment: v.Shared(vocab.ServicePortals)},
		{nat: true, src: "POSTROUTING", dst: f.postrouting, comment: v.Shared(vocab.PostroutingRules)},
	}
	if b.localhostNP {
		js = append(js, jump{src: "INPUT", dst: f.firewall}, jump{src: "OUTPUT", dst: f.firewall})
	}
	return js
}

// builtinJumpRules writes the jumps from the built-in chains. kube-proxy
// inserts each at position 1 when missing, so on a host without them the
// final top-down order of each built-in chain is the reverse of list order.
func (b *builder) builtinJumpRules() {
	js := b.jumps()
	for i := len(js) - 1; i >= 0; i-- {
		j := js[i]
		var args []string
		if j.ctNew {
			args = a("-m", "conntrack", "--ctstate", "NEW")
		}
		if j.comment != "" {
			args = append(args, comment(j.comment)...)
		}
		args = append(args, "-j", j.dst)
		t := b.filter
		if j.nat {
			t = b.nat
		}
		add(t, j.src, args)
	}
}
