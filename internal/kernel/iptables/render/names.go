package render

import "github.com/svcnat/svcnat/internal/kernel/iptables/vocab"

// fixedChains holds the names of the chains every ruleset has.
type fixedChains struct {
	services         string // nat and filter
	externalServices string // filter
	nodePorts        string // nat and filter
	postrouting      string // nat
	markMasq         string // nat
	forward          string // filter
	proxyFirewall    string // filter
	firewall         string // filter, IPv4 with localhost node ports only
}

func newFixedChains(v vocab.Vocab) fixedChains {
	return fixedChains{
		services:         v.Chain(vocab.Services),
		externalServices: v.Chain(vocab.ExternalServices),
		nodePorts:        v.Chain(vocab.NodePorts),
		postrouting:      v.Chain(vocab.Postrouting),
		markMasq:         v.Chain(vocab.MarkMasq),
		forward:          v.Chain(vocab.Forward),
		proxyFirewall:    v.Chain(vocab.ProxyFirewall),
		firewall:         v.Chain(vocab.Firewall),
	}
}
