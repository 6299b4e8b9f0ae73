package kernel

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/iptables/describe"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
	nftdescribe "github.com/svcnat/svcnat/internal/kernel/nftables/describe"
	nftrender "github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// Pure is the pure part (backend.Pure) of the backend called name:
// rendering, reading back and describing its objects, for the engine and
// the views. name is what a kernel, a plan or a state record says ("" where
// no kernel is open: render, a planned trace). Every backend svcnat has
// so far writes iptables rules (nft, legacy, a saved dump); a name svcnat
// does not know (a plan or state file from elsewhere) gets nil, for the
// caller to refuse, never another backend's reading.
func Pure(name backend.Name) backend.Pure {
	switch name.Canonical() {
	case "", iptables.NFT, iptables.Legacy, iptables.File:
		return iptablesPure{}
	case NFTables:
		return nftablesPure{}
	}
	return nil
}

// NFTables is the native nftables backend's name.
const NFTables = nftables.Name

type nftablesPure struct {
	nftrender.Renderer
	nftdescribe.Describer
}

type iptablesPure struct {
	render.Renderer
	describe.Describer
}
