package kernel

import (
	"net/netip"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	iptrace "github.com/svcnat/svcnat/internal/kernel/iptables/trace"
	nfttrace "github.com/svcnat/svcnat/internal/kernel/nftables/trace"
)

// Tracer is the tracer of rs — the rules of each family, planned or live,
// built-in chains included, of the backend called name (see Pure) — on a
// host whose own addresses are local; prefix names the chains svcnat
// owns, which its graph draws.
func Tracer(name backend.Name, rs map[backend.Family]*backend.Ruleset, local []netip.Addr, prefix string) backend.Tracer {
	if name.Canonical() == NFTables {
		return nfttrace.Host{Rules: rs, Local: local, Table: backend.NFTTable(prefix)}
	}
	return iptrace.Host{Rules: rs, Local: local, Prefix: prefix}
}
