package trace

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Graph is the chain graph of family f's svcnat table: the hooks, the
// base chains on them (by priority), the chains they lead to through
// jump, goto and the elements of verdict maps, and where the rules end
// (DNAT to an endpoint, DROP, REJECT, MASQUERADE). With service set
// ("namespace/name"), only the chains that serve it and the ones leading
// to them.
func (h Host) Graph(f backend.Family, service string) (*backend.Graph, error) {
	rs := h.Rules[f]
	if rs == nil || rs.Table(h.table()) == nil {
		return nil, fmt.Errorf("no %s table %s", f, h.table())
	}
	g := &graph{g: &backend.Graph{}, ids: map[string]string{}}
	t := &tracer{h: h, rs: rs, sets: map[string][]element{}}
	for _, hook := range []string{"prerouting", "input", "forward", "output", "postrouting"} {
		bs, err := hookChains(rs, h.table(), hook)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			if b.table != h.table() {
				continue
			}
			g.edge(g.node("hook:"+hook, hook, "hook"), g.node("chain:"+b.chain.Name, b.chain.Name, "chain"),
				fmt.Sprintf("%s priority %d", b.typ, b.priority), "")
		}
	}
	for _, c := range rs.Table(h.table()).Chains {
		if c.Kind != backend.KindChain {
			continue
		}
		for _, r := range c.Rules {
			if err := g.rule(t, c, r); err != nil {
				return nil, fmt.Errorf("%s: %w", r, err)
			}
		}
	}
	if service == "" {
		g.g.Edges = g.edges
		return g.g, nil
	}
	return g.only(service)
}

// graph builds a backend.Graph, recording per edge the service it
// belongs to, if any.
type graph struct {
	g     *backend.Graph
	ids   map[string]string
	edges []backend.Edge
	// owner is, per edge, the service whose chain it leaves or whose map
	// element it is ("" for the table's fixed objects).
	owner []string
}

func (g *graph) node(key, label, kind string) string {
	if id, ok := g.ids[key]; ok {
		return id
	}
	id := fmt.Sprintf("n%d", len(g.ids))
	g.ids[key] = id
	g.g.Nodes = append(g.g.Nodes, backend.Node{ID: id, Label: label, Kind: kind})
	return id
}

func (g *graph) edge(from, to, label, owner string) {
	g.edges = append(g.edges, backend.Edge{From: from, To: to, Label: label})
	g.owner = append(g.owner, owner)
}

// rule adds the edges of one rule of chain c: to the chains it jumps or
// goes to (one per element of a verdict map) and to where it ends.
func (g *graph) rule(t *tracer, c *backend.Chain, r backend.Rule) error {
	ops, err := parseRule(r.Text())
	if err != nil {
		return nil // not drawn; trace lists it where a packet meets it
	}
	from := g.node("chain:"+c.Name, c.Name, "chain")
	owner := ServiceOf(c.Name)
	label := matchLabel(ops)
	to := func(v verdict, label, owner string) {
		switch v.kind {
		case "jump", "goto":
			g.edge(from, g.node("chain:"+v.chain, v.chain, "chain"), strings.TrimSpace(label), owner)
		case "drop", "reject":
			g.edge(from, g.node("end:"+v.kind, strings.ToUpper(v.kind), "end"), strings.TrimSpace(label), owner)
		}
	}
	for _, o := range ops {
		switch o.kind {
		case opVerdict:
			to(o.verdict, label, owner)
		case opVmap, opNumgenVmap:
			elems := o.elems
			if o.set != "" {
				if elems, err = t.elements(o.set); err != nil {
					return err
				}
			}
			for _, el := range elems {
				v, err := verdictOf(el.value)
				if err != nil {
					return err
				}
				lbl := label + " " + strings.Join(el.key, " . ")
				if o.kind == opNumgenVmap {
					lbl = label + " " + probLabel(o.mod)
				}
				elOwner := owner
				if v.chain != "" && ServiceOf(v.chain) != "" {
					elOwner = ServiceOf(v.chain)
				}
				if svc, _, ok := strings.Cut(el.comment, ":"); ok && elOwner == "" {
					elOwner = svc
				}
				to(v, lbl, elOwner)
			}
		case opDNAT:
			if o.to != "" {
				g.edge(from, g.node("end:DNAT "+o.to, "DNAT "+o.to, "end"), label, owner)
				continue
			}
			if len(o.key) > 0 {
				// A dispatch chain: every chainless port's endpoints,
				// drawn from the ports' elements.
				if err := g.dispatch(t, from, label, o); err != nil {
					return err
				}
				continue
			}
			picks, err := t.picks(nil, o)
			if err != nil {
				return err
			}
			for _, el := range picks {
				if el == nil {
					continue
				}
				d := strings.ReplaceAll(el.value, " . ", ":")
				if strings.Count(d, ":") > 1 {
					i := strings.LastIndex(d, ":")
					d = "[" + d[:i] + "]" + d[i:]
				}
				g.edge(from, g.node("end:DNAT "+d, "DNAT "+d, "end"), strings.TrimSpace(label+" "+probLabel(o.mod)), owner)
			}
		case opMasquerade:
			g.edge(from, g.node("end:masquerade", "MASQUERADE", "end"), label, owner)
		}
	}
	return nil
}

// dispatch adds a dispatch chain's edges: to each endpoint of its map,
// labelled with the destination it is for and numgen's probability.
func (g *graph) dispatch(t *tracer, from, label string, o op) error {
	elems, err := t.elements(o.set)
	if err != nil {
		return err
	}
	for _, el := range elems {
		if len(el.key) != len(o.key)+1 {
			return fmt.Errorf("@%s element %q: want %d parts", o.set, strings.Join(el.key, " . "), len(o.key)+1)
		}
		d := endpointLabel(el.value)
		lbl := strings.TrimSpace(label + " " + strings.Join(el.key[:len(o.key)], " . ") + " " + probLabel(o.mod))
		g.edge(from, g.node("end:DNAT "+d, "DNAT "+d, "end"), lbl, "")
	}
	return nil
}

// endpointLabel is a map's "address . port" as "address:port"
// ("[v6]:port").
func endpointLabel(v string) string {
	d := strings.ReplaceAll(v, " . ", ":")
	if strings.Count(d, ":") > 1 {
		i := strings.LastIndex(d, ":")
		d = "[" + d[:i] + "]" + d[i:]
	}
	return d
}

// probLabel is the probability of one of numgen's mod outcomes.
func probLabel(mod int) string {
	return "p=" + strconv.FormatFloat(1/float64(mod), 'g', 3, 64)
}

// matchLabel says briefly what a rule's matches test: the words of its
// match expressions, as nft lists them.
func matchLabel(ops []op) string {
	var parts []string
	for _, o := range ops {
		switch o.kind {
		case opLookup:
			var key []string
			for _, s := range o.key {
				key = append(key, string(s))
			}
			neg := ""
			if o.neg {
				neg = "!"
			}
			switch {
			case o.set == "affinity" || strings.HasPrefix(o.set, "affinity-"):
				parts = append(parts, "affinity")
			case o.set != "":
				parts = append(parts, strings.Join(key, ".")+" "+neg+"@"+o.set)
			default:
				var vals []string
				for _, e := range o.elems {
					vals = append(vals, strings.Join(e.key, " . "))
				}
				parts = append(parts, strings.Join(key, ".")+" "+neg+strings.Join(vals, ","))
			}
		case opNumgenMatch:
			parts = append(parts, probLabel(o.mod))
		case opMarkSet:
			parts = append(parts, "mark")
		}
	}
	return strings.Join(parts, " ")
}

// ServiceOf is the service ("namespace/name") a per-service chain or set
// of svcnat's table belongs to, from its name
// ("service-ULMVA6XW-ns1/svc1/tcp/p80" → "ns1/svc1"); "" for the fixed
// objects, whose names hold no "/".
func ServiceOf(name string) string {
	for _, prefix := range []string{"service-", "local-", "external-", "firewall-", "endpoint-", "affinity-"} {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, "-") // the hash
		if !ok {
			return ""
		}
		// ns/name/proto/port[__endpoint]: the service is what precedes
		// the protocol (a bare name has no namespace).
		rest, _, _ = strings.Cut(rest, "__")
		parts := strings.Split(rest, "/")
		if len(parts) < 3 {
			return ""
		}
		return strings.Join(parts[:len(parts)-2], "/")
	}
	return ""
}

// only keeps the edges of service's own chains and map elements and,
// transitively, the edges leading to them.
func (g *graph) only(service string) (*backend.Graph, error) {
	keep := make([]bool, len(g.edges))
	for i := range g.edges {
		keep[i] = g.owner[i] == service
	}
	// The fixed objects' edges that lead to a kept edge's chain are how
	// packets reach the service: kept too.
	for changed := true; changed; {
		changed = false
		for i, e := range g.edges {
			if keep[i] {
				continue
			}
			for j, k := range g.edges {
				if keep[j] && e.To == k.From && g.owner[i] == "" {
					keep[i], changed = true, true
					break
				}
			}
		}
	}
	used := map[string]bool{}
	var edges []backend.Edge
	for i, e := range g.edges {
		if keep[i] {
			edges = append(edges, e)
			used[e.From], used[e.To] = true, true
		}
	}
	if len(edges) == 0 {
		return nil, fmt.Errorf("no rule serves service %q", service)
	}
	out := &backend.Graph{Edges: edges}
	for _, n := range g.g.Nodes {
		if used[n.ID] {
			out.Nodes = append(out.Nodes, n)
		}
	}
	return out, nil
}
