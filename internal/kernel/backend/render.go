package backend

import (
	"io"
	"net/netip"

	"github.com/svcnat/svcnat/internal/config"
)

// RenderOptions are the facts about a host that rendering a configuration
// for it depends on.
type RenderOptions struct {
	// Node is this host's node name; endpoints whose node equals it are
	// local. When empty, no endpoint is local.
	Node string
	// RandomFully masquerades with fully randomised source ports, as
	// kube-proxy does when the kernel's tools support it (Limits).
	RandomFully bool
	// LocalAddresses are the host's addresses. With node_port_addresses set
	// they decide which addresses node ports answer on, as the host's
	// interface addresses do for kube-proxy's --nodeport-addresses; and a
	// load-balancer source range containing one of them (loopback excepted)
	// lets traffic from the load-balancer IPs themselves in, as kube-proxy
	// does when a range contains its node IP.
	LocalAddresses []netip.Addr
	// Others, when set, is what the services of a larger configuration
	// that are not in the one rendered contribute to the decisions a
	// renderer makes over every service (see Shares): a render of a few
	// services (an incremental update) then renders them exactly as the
	// render of the whole configuration does.
	Others *Shares
}

// Shares is what services contribute to the decisions a renderer makes
// over every service of a configuration, in the renderer's own terms:
// iptables' large-cluster mode counts every service port's endpoints, and
// nftables numbers service chains and affinity endpoints in spaces the
// whole table shares.
type Shares struct {
	// Endpoints counts the endpoints of the service ports of each family.
	Endpoints map[Family]int
	// Names are, per family, the names that take a number in a space
	// every service shares (spelled as the renderer likes).
	Names map[Family]map[string]bool
}

// Add adds o's contribution to s, or takes it away (sign -1).
func (s *Shares) Add(o *Shares, sign int) {
	if o == nil {
		return
	}
	for f, n := range o.Endpoints {
		if s.Endpoints == nil {
			s.Endpoints = map[Family]int{}
		}
		s.Endpoints[f] += sign * n
	}
	for f, names := range o.Names {
		if s.Names == nil {
			s.Names = map[Family]map[string]bool{}
		}
		if s.Names[f] == nil {
			s.Names[f] = map[string]bool{}
		}
		for n := range names {
			if sign < 0 {
				delete(s.Names[f], n)
			} else {
				s.Names[f][n] = true
			}
		}
	}
}

// Rendered is a configuration rendered for a host: the objects svcnat
// wants, per family, and which service each per-service object serves.
type Rendered struct {
	// Rulesets holds the objects per family. IPv4 is always present (the
	// fixed objects exist even without services); IPv6 only when some
	// service has an IPv6 cluster IP.
	Rulesets map[Family]*Ruleset
	// ChainService maps every per-service chain (in any family) to the name
	// of the service it belongs to. Fixed and built-in chains are not in
	// it. Chain names are hashes, so this index is the only way to group
	// chains by service.
	ChainService map[string]string
	// ChainUsers maps, per family, every chain or map that is neither
	// fixed nor one service's (nftables' dispatch chains, which the ports
	// of many services go to, and endpoints maps, which their chains pick
	// from) to the services whose objects go to it: it exists while one
	// of them does.
	ChainUsers map[Family]map[string][]string
	// Shares is what each rendered service contributes to the decisions
	// made over every service (by service name), and Modes what was
	// decided per family, in the renderer's words ("" for the default):
	// a service rendered in another mode than before changes every
	// service's objects.
	Shares map[string]*Shares
	Modes  map[Family]string
}

// Renderer is the part of a backend that turns configuration into its
// objects and reads back the text form svcnat keeps them in. It is pure:
// it reads no kernel and runs no binary.
type Renderer interface {
	// Render renders a validated configuration for a host, in the
	// canonical form the backend reads back, so that desired and live
	// objects compare line for line.
	Render(cfg *config.Config, opts RenderOptions) (*Rendered, error)
	// Parse reads one family's objects from their text form (Ruleset.Text,
	// as generations and saved plans keep them).
	Parse(fam Family, r io.Reader) (*Ruleset, error)
	// WriteInput writes one family's objects as the backend's own input
	// (what svcnat render prints): a comment line saying what it is for,
	// for node, then the input.
	WriteInput(w io.Writer, rs *Ruleset, node string) error
}

// Pure is everything a backend does without a kernel: render, read back,
// and say what its objects mean (Describer).
type Pure interface {
	Renderer
	Describer
}
