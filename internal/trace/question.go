package trace

import (
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Protocols are the protocols a packet can be traced as, in the order a
// hint names them.
var Protocols = []string{"tcp", "udp", "sctp"}

// Served says whether prefix's rules took the packet on any of res's
// paths: a DNAT (to a service's endpoint), or a verdict decided in one
// of the prefix's chains (a REJECT of a service without endpoints, a
// DROP of a load-balancer source range); on nftables, in the prefix's
// table ("ip svcnat").
func Served(res *backend.Result, prefix string) bool {
	for _, t := range res.Paths {
		if t.Verdict == backend.DNAT || strings.HasPrefix(t.Decided.Chain, prefix+"-") ||
			strings.HasSuffix(t.Decided.Table, " "+backend.NFTTable(prefix)) {
			return true
		}
	}
	return false
}

// OtherProtocols are the protocols under which prefix's rules take a
// packet that they pass over as p.Proto: a UDP service traced as TCP
// (trace's default) looks like no service at all, and this is what says
// it is there. None when p's own trace is served (res); tr is what traced
// it.
func OtherProtocols(tr backend.Tracer, p backend.Packet, res *backend.Result, prefix string) []string {
	if Served(res, prefix) {
		return nil
	}
	var other []string
	for _, proto := range Protocols {
		if proto == p.Proto {
			continue
		}
		q := p
		q.Proto = proto
		if r, err := tr.Trace(q); err == nil && Served(r, prefix) {
			other = append(other, proto)
		}
	}
	return other
}
