package describe

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/service"
)

// A saved plan's desired objects are data that whoever can write the file
// chooses, and apply loads them into the kernel as root. The plan file's
// digest catches an edit by someone who does not recompute it;
// CheckDesired is what holds against someone who does: it admits only
// svcnat's own table, the objects the renderer declares (the fixed ones
// with the renderer's own declarations, per-service ones by kube-proxy's
// names), and in each only rules and elements of the shapes the renderer
// writes there. It cannot know the configuration the plan came from, so
// within those shapes (which endpoint a dnat goes to, which port a node
// port is) it admits what the renderer could have written for some
// configuration.

// DesiredObjectError names a desired table, object, rule or element of a
// saved plan that svcnat could not have written, and why. A plan file
// holds each family's desired objects as one string, so the file's line
// numbers say nothing: the object is named by its family, table and nft
// line instead.
type DesiredObjectError struct {
	Family backend.Family
	Table  string
	Object string        // "" when the whole table is refused
	Kind   backend.Kind  // the object's kind
	Rule   *backend.Rule // nil when the whole object is refused
	Reason string
}

func (e *DesiredObjectError) Error() string {
	switch {
	case e.Object == "":
		return fmt.Sprintf("the plan's desired %s objects hold table %s: %s", e.Family, e.Table, e.Reason)
	case e.Rule == nil:
		return fmt.Sprintf("the plan's desired %s %s %s (table %s) is not one svcnat writes: %s", e.Family, e.Kind, e.Object, e.Table, e.Reason)
	}
	return fmt.Sprintf("the plan's desired %s line %q is not one svcnat writes: %s", e.Family, backend.NFTLine(e.Family, e.Table, *e.Rule), e.Reason)
}

// CheckDesired refuses desired objects that svcnat, with chain prefix
// prefix, could not have written (a *DesiredObjectError naming the
// first): a ruleset not in nftables' syntax, any table but the prefix's
// (backend.NFTTable); a fixed object other than the renderer's, of
// another kind or declaration; a per-service object not named as
// kube-proxy names them (kind, hash, service, protocol, port), an
// affinity set with another declaration; and any rule or element but
// those of the shapes the renderer writes in that object (shapes below),
// jumping or going only to the objects the renderer makes them go to,
// which must be in the plan, with the same masquerade mark in every rule.
func (Describer) CheckDesired(prefix string, desired map[backend.Family]*backend.Ruleset) error {
	mark := ""
	for _, f := range backend.Families {
		rs := desired[f]
		if rs == nil {
			continue
		}
		if rs.Syntax != backend.NFTables && len(rs.Tables) > 0 {
			return &DesiredObjectError{Family: f, Table: rs.Tables[0].Name, Reason: "the plan's objects are not in nftables' syntax"}
		}
		fixed, err := fixedObjects(f)
		if err != nil {
			return err
		}
		for _, t := range rs.Tables {
			if t.Name != backend.NFTTable(prefix) {
				return &DesiredObjectError{Family: f, Table: t.Name, Reason: "svcnat writes only its table " + backend.NFTTable(prefix)}
			}
			c := &checker{fam: f, t: t, fixed: fixed, mark: &mark, ipX: backend.NFTFamily(f)}
			if err := c.table(); err != nil {
				return err
			}
		}
	}
	return nil
}

// fixedDecl is a fixed object as the renderer declares it.
type fixedDecl struct {
	kind   backend.Kind
	policy string
}

var (
	fixedOnce [2]sync.Once
	fixedObjs [2]map[string]fixedDecl
	fixedErr  [2]error
)

// fixedObjects are the objects the renderer declares in family f's table
// without services, taken from the renderer itself so that they follow
// it: an empty service model, with node port addresses so that
// nodeport-ips is declared too; and every endpoints map it may declare.
func fixedObjects(f backend.Family) (map[string]fixedDecl, error) {
	i := 0
	if f == backend.IPv6 {
		i = 1
	}
	fixedOnce[i].Do(func() {
		s := &config.Settings{MasqueradeBit: config.DefaultMasqueradeBit, NodePortAddresses: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}}
		rs, _, err := render.RenderModel(&service.Model{}, s, f, render.Options{})
		if err != nil {
			fixedErr[i] = err
			return
		}
		fixedObjs[i] = map[string]fixedDecl{}
		for _, c := range rs.Tables[0].Chains {
			fixedObjs[i][c.Name] = fixedDecl{c.Kind, c.Policy}
		}
		// The endpoints maps are declared where a chain uses them, each
		// as the renderer declares it.
		eps, err := render.EndpointsMaps(f)
		if err != nil {
			fixedErr[i] = err
			return
		}
		for _, c := range eps.Tables[0].Chains {
			fixedObjs[i][c.Name] = fixedDecl{c.Kind, c.Policy}
		}
	})
	return fixedObjs[i], fixedErr[i]
}

// checker checks one table.
type checker struct {
	fam   backend.Family
	t     *backend.Table
	fixed map[string]fixedDecl
	mark  *string
	ipX   string // "ip" or "ip6"
}

func (c *checker) table() error {
	// Declarations first: they are what the rules and elements may name.
	for _, o := range c.t.Chains {
		if reason := c.declaration(o); reason != "" {
			return &DesiredObjectError{Family: c.fam, Table: c.t.Name, Object: o.Name, Kind: o.Kind, Reason: reason}
		}
	}
	for _, o := range c.t.Chains {
		shapes := c.shapesOf(o)
		for i := range o.Rules {
			r := &o.Rules[i]
			reason := ""
			switch {
			case r.Chain != o.Name:
				reason = "it is filed under " + o.Name
			case (r.Form == backend.NFTElement) != (o.Kind != backend.KindChain):
				reason = fmt.Sprintf("a %s holds only %s", o.Kind, map[bool]string{true: "rules", false: "elements"}[o.Kind == backend.KindChain])
			default:
				reason = c.match(o, shapes, r.Text())
			}
			if reason != "" {
				return &DesiredObjectError{Family: c.fam, Table: c.t.Name, Object: o.Name, Kind: o.Kind, Rule: r, Reason: reason}
			}
		}
	}
	return nil
}

// nameChars are the characters of every name the renderer writes; none
// of nft's syntax is among them.
var nameChars = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// declaration says why o may not be an object of the table, or "".
func (c *checker) declaration(o *backend.Chain) string {
	if d, ok := c.fixed[o.Name]; ok {
		if d.kind != o.Kind {
			return fmt.Sprintf("svcnat's %s is a %s", o.Name, d.kind)
		}
		if d.policy != o.Policy {
			return fmt.Sprintf("svcnat declares it { %s }", d.policy)
		}
		return ""
	}
	if _, _, ok := dispatchOf(o.Name); ok {
		if o.Kind != backend.KindChain || o.Policy != "" {
			return "svcnat declares a dispatch chain as a regular chain, without a declaration"
		}
		return ""
	}
	kind, base := perService(o.Name)
	switch {
	case kind == notPerService:
		return "no object svcnat writes is named so"
	case !nameChars.MatchString(o.Name) || len(o.Name) > 256:
		return "a name svcnat writes holds only letters, digits and . _ / -, at most 256 of them"
	case !validBase(kind, base):
		return "a per-service object is named <kind>-HASH-namespace/name/protocol/port, as kube-proxy names them"
	case kind == affinitySet || kind == epChain:
		return "svcnat writes no endpoint chains nor per-endpoint affinity sets: the endpoints maps and the affinity set hold them"
	case o.Kind != backend.KindChain || o.Policy != "":
		return "svcnat declares a per-service chain as a regular chain, without a declaration"
	}
	return ""
}

// validBase reports whether base is one the renderer names a per-service
// object with: a hash, the service, a protocol and a port name, and for
// an endpoint's objects its address and port; or such a name cut to
// kube-proxy's 240 characters with "...".
func validBase(kind objKind, base string) bool {
	if strings.HasSuffix(base, "...") {
		return len(base) == 240 && isHash(base[:8]) && base[8] == '-'
	}
	svc, _, port, ok := portOfBase(base)
	if !ok || !config.ValidServiceName(svc) || port != "" && !config.ValidName(port) {
		return false
	}
	_, ep, isEP := strings.Cut(base, "__")
	if isEP != (kind == epChain || kind == affinitySet) {
		return false
	}
	if isEP {
		ip, p, ok := strings.Cut(ep, "/")
		_, err := netip.ParseAddr(ip)
		if err != nil {
			_, err = netip.ParseAddr(strings.ReplaceAll(ip, ".", ":"))
		}
		return ok && err == nil && isPort(p)
	}
	return true
}
