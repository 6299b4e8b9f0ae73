package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/trace"
)

func traceCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "trace",
		Usage: "follow one packet through the planned rules (or the live ones with --live) and print its paths and verdict",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "src", Required: true, Usage: "the packet's source address"},
			&ucli.StringFlag{Name: "dst", Required: true, Usage: "the packet's destination address"},
			&ucli.StringFlag{Name: "proto", Value: "tcp", Usage: "tcp, udp or sctp"},
			&ucli.IntFlag{Name: "dport", Required: true, Usage: "the destination port"},
			&ucli.StringFlag{Name: "origin", Value: "external", Usage: "external (arrives on an interface: PREROUTING) or local (sent by a process of the host: OUTPUT, and back in over lo to a local address)"},
			&ucli.StringFlag{Name: "in-interface", Usage: "the interface an external packet arrives on, so that -i rules (Docker's, a firewall's) are evaluated; without it only -i lo is"},
			&ucli.BoolFlag{Name: "live", Usage: "trace the live rules (the owned chains and the built-in chains around them) instead of the planned ones"},
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			p, err := packetFlags(c)
			if err != nil {
				return err
			}
			in, err := traceHost(c, g, c.Bool("live"))
			if err != nil {
				return err
			}
			res, err := in.Trace(p)
			if err != nil {
				return err
			}
			in.warn(c.App.ErrWriter, p, res)
			if g.JSON {
				err = writeTraceJSON(c, res)
			} else {
				err = trace.Write(c.App.Writer, res)
			}
			if err != nil {
				return fmt.Errorf("writing the trace: %w", err)
			}
			return nil
		},
	}
}

func packetFlags(c *ucli.Context) (backend.Packet, error) {
	p := backend.Packet{Proto: strings.ToLower(c.String("proto")), DPort: c.Int("dport"), Origin: backend.Origin(c.String("origin")),
		InInterface: c.String("in-interface")}
	var err error
	if p.Src, err = netip.ParseAddr(c.String("src")); err != nil {
		return p, fmt.Errorf("--src %q is not an IP address", c.String("src"))
	}
	if p.Dst, err = netip.ParseAddr(c.String("dst")); err != nil {
		return p, fmt.Errorf("--dst %q is not an IP address", c.String("dst"))
	}
	if p.Origin != backend.OriginExternal && p.Origin != backend.OriginLocal {
		return p, withHint(fmt.Errorf("--origin %q", p.Origin), "use --origin external or local")
	}
	if p.DPort < 1 || p.DPort > 65535 {
		return p, fmt.Errorf("--dport %d is not a port", p.DPort)
	}
	if i := p.InInterface; c.IsSet("in-interface") && (i == "" || len(i) > 15 || strings.ContainsAny(i, " /+!")) {
		return p, fmt.Errorf("--in-interface %q is not an interface name", i)
	}
	if p.InInterface != "" && p.Origin != backend.OriginExternal {
		return p, withHint(fmt.Errorf("--in-interface with --origin %s", p.Origin), "--in-interface names where a packet from outside arrives; a local packet needs none")
	}
	if p.InInterface == "lo" {
		return p, withHint(fmt.Errorf("--in-interface lo: a packet from outside does not arrive on lo"), "trace a packet the host sends with --origin local")
	}
	return p, nil
}

// traced is what trace and graph evaluate, and where its parts came from.
type traced struct {
	backend.Tracer
	// Local are the node's addresses the rules are evaluated with.
	Local backend.HostAddresses
	// Prefix is the chain prefix of the rules svcnat owns.
	Prefix string
	// NodePorts are the configuration's node ports (planned rules only),
	// by protocol: "tcp/30080".
	NodePorts map[string]bool
	// Addresses names where Local came from, for a planned trace or
	// for a live one whose addresses could not be read, as a warning
	// says it: "the --local-address addresses", "the
	// addresses of namespace NAME", or thisMachine when they were read
	// from the namespace svcnat runs in (the silent guess that a trace of
	// another node's rules must not hide); "" when nothing gave any (a
	// dump).
	Addresses string
	// AddrErr is why this machine's addresses could not be read.
	AddrErr error
}

// traceHost is what trace and graph evaluate: the planned rules (the
// configuration rendered for this host: no root needed), or with live the
// live rules of the host, the namespace or the dump the global flags name.
func traceHost(c *ucli.Context, g Globals, live bool) (traced, error) {
	if live {
		prefix, err := ownedPrefix(c, g)
		if err != nil {
			return traced{}, err
		}
		e, err := openEngine(c, g, prefix)
		if err != nil {
			return traced{}, err
		}
		live, err := e.LiveRules()
		if err != nil {
			return traced{}, err
		}
		t := traced{Prefix: prefix}
		if e.Addresses != nil {
			if t.Local, err = e.Addresses(); err != nil {
				// As for the planned rules: unread, the trace runs as if
				// the node had no address, and says so.
				t.Local, t.AddrErr, t.Addresses = nil, err, whoseAddresses(g)
			}
		}
		t.Tracer = e.Tracer(live, t.Local, prefix)
		return t, nil
	}
	cfg, err := loadConfig(c, g)
	if err != nil {
		return traced{}, err
	}
	node, err := g.nodeName(cfg.Settings.Node)
	if err != nil {
		return traced{}, err
	}
	h := engine.RenderHost(g.hostOptions(cfg.Settings.ChainPrefix))
	r, err := h.Render(cfg, engine.RenderFor{Node: node})
	if err != nil {
		return traced{}, err
	}
	t := traced{Prefix: cfg.Settings.ChainPrefix, NodePorts: map[string]bool{}, Local: r.Options.LocalAddresses, AddrErr: r.AddrErr}
	if h.Addresses != nil {
		t.Addresses = whoseAddresses(g)
	}
	for _, s := range cfg.Services {
		for _, p := range s.Ports {
			if p.NodePort != 0 {
				t.NodePorts[strings.ToLower(p.Protocol)+"/"+strconv.Itoa(p.NodePort)] = true
			}
		}
		if s.HealthCheckNodePort != 0 {
			t.NodePorts["tcp/"+strconv.Itoa(s.HealthCheckNodePort)] = true
		}
	}
	t.Tracer = h.Tracer(r.Rulesets, t.Local, t.Prefix)
	return t, nil
}

// whoseAddresses says whose addresses the host's are, for warnings.
func whoseAddresses(g Globals) string {
	switch {
	case len(g.LocalAddresses) > 0:
		return localAddresses
	case g.NetNS != "":
		return "the addresses of namespace " + g.NetNS
	}
	return thisMachine
}

// warn says on stderr when the question p looks wrong, as trace cannot
// know what was meant: the node's addresses guessed from this machine
// (and a node port traced to an address that is not among them, which
// the node-port rules' -m addrtype --dst-type LOCAL never matches), or a
// destination svcnat serves only under another protocol.
func (t traced) warn(w io.Writer, p backend.Packet, res *backend.Result) {
	nodePort := t.NodePorts[p.Proto+"/"+strconv.Itoa(p.DPort)]
	switch {
	case t.AddrErr != nil:
		// A namespace's as much as this machine's: unread, the trace
		// runs as if the node had no address at all.
		fmt.Fprintf(w, "svcnat: warning: reading %s: %v; the trace takes the node to have none\n", t.Addresses, t.AddrErr)
	case t.Addresses == thisMachine:
		fmt.Fprintf(w, "svcnat: the node's addresses are this machine's: %s (--local-address gives another node's)\n", joinAddrs(t.Local))
	}
	if nodePort && !t.Local.IsLocal(p.Dst) {
		whose, fix := "no address of the node is known (a dump holds none)", "give the node's addresses with --local-address"
		switch t.Addresses {
		case "":
		case thisMachine:
			// Named on the line above.
			whose = fmt.Sprintf("%s is not one of %s", p.Dst, t.Addresses)
		default:
			whose = fmt.Sprintf("%s is not one of %s (%s)", p.Dst, t.Addresses, joinAddrs(t.Local))
		}
		if t.Addresses == localAddresses {
			// The node's addresses were given: the destination is the
			// wrong one, or one of them was left out.
			fix = fmt.Sprintf("trace one of them, or give %s with --local-address too if it is the node's", p.Dst)
		}
		fmt.Fprintf(w, "svcnat: warning: %d is a node port, but %s, so its rules (-m addrtype --dst-type LOCAL) do not match; %s\n",
			p.DPort, whose, fix)
	}
	if other := trace.OtherProtocols(t.Tracer, p, res, t.Prefix); len(other) > 0 {
		fmt.Fprintf(w, "svcnat: warning: svcnat serves %s as %s only, not %s; trace it with --proto %s\n",
			netip.AddrPortFrom(p.Dst, uint16(p.DPort)), strings.Join(other, " or "), p.Proto, other[0])
	}
}

// thisMachine is traced.Addresses when they are this machine's own,
// localAddresses when --local-address gave them.
const (
	thisMachine    = "this machine's addresses"
	localAddresses = "the --local-address addresses"
)

func joinAddrs(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return "none"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// traceJSON is trace --json: version 1.
type traceJSON struct {
	FormatVersion string     `json:"format_version"`
	Packet        packetJSON `json:"packet"`
	Paths         []pathJSON `json:"paths"`
}

type packetJSON struct {
	Src         string `json:"src"`
	Dst         string `json:"dst"`
	Proto       string `json:"proto"`
	DPort       int    `json:"dport"`
	Origin      string `json:"origin"`
	InInterface string `json:"in_interface,omitempty"`
}

type pathJSON struct {
	Probability float64       `json:"probability"`
	Condition   string        `json:"condition,omitempty"`
	Hops        []backend.Hop `json:"hops"`
	Marked      bool          `json:"marked_for_masquerade"`
	Masquerade  string        `json:"masquerade,omitempty"`
	// Verdict and Destination are left out of a cut path, which has no
	// verdict: Cut says where it stopped instead.
	Verdict      string   `json:"verdict,omitempty"`
	Destination  string   `json:"destination,omitempty"`
	DecidedBy    string   `json:"decided_by,omitempty"`
	NotEvaluated []string `json:"not_evaluated,omitempty"`
	Cut          *cutJSON `json:"cut,omitempty"`
}

// cutJSON is where a path was cut: the chain whose jump went past the
// jump depth limit.
type cutJSON struct {
	Depth int    `json:"depth"`
	Chain string `json:"chain"`
}

func writeTraceJSON(c *ucli.Context, res *backend.Result) error {
	p := res.Packet
	out := traceJSON{FormatVersion: "1", Packet: packetJSON{Src: p.Src.String(), Dst: p.Dst.String(), Proto: p.Proto, DPort: p.DPort, Origin: string(p.Origin),
		InInterface: p.InInterface}}
	for _, t := range res.Paths {
		j := pathJSON{Probability: t.Probability, Condition: t.Condition, Hops: t.Hops, Marked: t.Marked, Masquerade: t.Masquerade,
			Verdict: string(t.Verdict), Destination: t.Dst.String(), NotEvaluated: t.Unknown}
		j.DecidedBy = trace.DecidedBy(t)
		if t.Cut != nil {
			j.Verdict, j.Destination, j.Cut = "", "", &cutJSON{Depth: t.Cut.Depth, Chain: t.Cut.Chain}
		}
		out.Paths = append(out.Paths, j)
	}
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func graphCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "graph",
		Usage: "the chain graph (built-in hooks, owned chains, endpoints) as Graphviz DOT or Mermaid",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "format", Value: "dot", Usage: "dot or mermaid"},
			&ucli.StringFlag{Name: "service", Usage: "only the chains of this service (namespace/name) and those leading to them"},
			&ucli.StringFlag{Name: "family", Value: "ipv4", Usage: "ipv4 or ipv6"},
			&ucli.BoolFlag{Name: "live", Usage: "graph the live rules instead of the planned ones"},
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			in, err := traceHost(c, g, c.Bool("live"))
			if err != nil {
				return err
			}
			fam, ok := backend.ParseFamily(c.String("family"))
			if !ok {
				return fmt.Errorf("--family %q: want ipv4 or ipv6", c.String("family"))
			}
			gr, err := in.Graph(fam, c.String("service"))
			if err != nil {
				return err
			}
			write := trace.WriteDOT
			switch c.String("format") {
			case "dot":
			case "mermaid":
				write = trace.WriteMermaid
			default:
				return withHint(fmt.Errorf("--format %q: graph writes dot or mermaid", c.String("format")), "use --format dot (pipe it to dot -Tsvg for a picture) or --format mermaid")
			}
			if err := write(c.App.Writer, gr); err != nil {
				return fmt.Errorf("writing the graph: %w", err)
			}
			return nil
		},
	}
}
