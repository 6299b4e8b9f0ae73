package config

import (
	"fmt"
	"math"
	"math/big"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/svcnat/svcnat/internal/echo"
)

// The raw structs hold one file's blocks as HCL decoded them. The schemas
// below are closed (every attribute and block is listed), so an unknown
// block or attribute is an error with its range, and a misspelling gets
// hcl's "Did you mean" hint.
//
// Every attribute is held as a *hcl.Attribute rather than a Go type: it is
// nil when absent, and it keeps both the expression and the range of the
// whole attribute, which the semantic checks point at. Decoding straight
// into Go types would leave a half-decoded zero behind a type error, which
// the range checks would then report a second time.
//
// svcnat decodes with hcl.Body.Content and these fixed schemas rather than
// gohcl, which derives the schema from struct tags by reflection on every
// block: at 10,000 services that cost as much as parsing the files.

// rawFile is one configuration file.
type rawFile struct {
	Settings []*rawSettings
	Services []*rawService
}

// rawSettings is the settings block.
type rawSettings struct {
	ChainPrefix        *hcl.Attribute
	Node               *hcl.Attribute
	ClusterCIDRs       *hcl.Attribute
	MasqueradeAll      *hcl.Attribute
	MasqueradeBit      *hcl.Attribute
	NodePortAddresses  *hcl.Attribute
	NodePortRange      *hcl.Attribute
	LocalhostNodePorts *hcl.Attribute

	DefRange hcl.Range
}

// rawService is a service block.
type rawService struct {
	Name      string
	NameRange hcl.Range

	Type                     *hcl.Attribute
	ClusterIPs               *hcl.Attribute
	ExternalIPs              *hcl.Attribute
	LoadBalancerIPs          *hcl.Attribute
	LoadBalancerSourceRanges *hcl.Attribute
	ExternalTrafficPolicy    *hcl.Attribute
	InternalTrafficPolicy    *hcl.Attribute
	HealthCheckNodePort      *hcl.Attribute
	SessionAffinity          *hcl.Attribute
	SessionAffinityTimeout   *hcl.Attribute

	Ports     []*rawPort
	Endpoints []*rawEndpoint
	// HealthChecks holds every health_check block, so that a second one
	// is reported with the first; only the first is used.
	HealthChecks []*rawHealthCheck

	DefRange hcl.Range
}

// rawPort is a port block.
type rawPort struct {
	Name       *hcl.Attribute
	Protocol   *hcl.Attribute
	Port       *hcl.Attribute // required; checked by hand for one wording
	TargetPort *hcl.Attribute
	NodePort   *hcl.Attribute

	DefRange hcl.Range
}

// rawEndpoint is an endpoint block.
type rawEndpoint struct {
	Address     *hcl.Attribute // required; checked by hand
	Node        *hcl.Attribute
	Ready       *hcl.Attribute
	Serving     *hcl.Attribute
	Terminating *hcl.Attribute
	Ports       *hcl.Attribute

	DefRange hcl.Range
}

// rawHealthCheck is a health_check block.
type rawHealthCheck struct {
	Protocol    *hcl.Attribute
	Port        *hcl.Attribute
	ServicePort *hcl.Attribute
	Path        *hcl.Attribute
	Send        *hcl.Attribute
	Expect      *hcl.Attribute
	Interval    *hcl.Attribute
	Timeout     *hcl.Attribute
	Rise        *hcl.Attribute
	Fall        *hcl.Attribute

	DefRange hcl.Range
}

// The schemas. Attributes are all optional to hcl: the required ones are
// checked by hand, for one wording of the error.
var (
	fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "settings"},
		{Type: "service", LabelNames: []string{"name"}},
	}}
	settingsSchema = attributes(nil, "chain_prefix", "node", "cluster_cidrs", "masquerade_all", "masquerade_bit",
		"node_port_addresses", "node_port_range", "localhost_node_ports")
	serviceSchema = attributes([]hcl.BlockHeaderSchema{{Type: "port"}, {Type: "endpoint"}, {Type: "health_check"}},
		"type", "cluster_ips", "external_ips", "load_balancer_ips", "load_balancer_source_ranges",
		"external_traffic_policy", "internal_traffic_policy", "health_check_node_port",
		"session_affinity", "session_affinity_timeout")
	portSchema        = attributes(nil, "name", "protocol", "port", "target_port", "node_port")
	endpointSchema    = attributes(nil, "address", "node", "ready", "serving", "terminating", "ports")
	healthCheckSchema = attributes(nil, "protocol", "port", "service_port", "path", "send", "expect",
		"interval", "timeout", "rise", "fall")
)

func attributes(blocks []hcl.BlockHeaderSchema, names ...string) *hcl.BodySchema {
	s := &hcl.BodySchema{Blocks: blocks}
	for _, n := range names {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n})
	}
	return s
}

// parseFile parses and decodes one file. A file with syntax errors is not
// decoded: its partial body would only add confusing follow-on errors.
func parseFile(name string, src []byte) (*hcl.File, *rawFile, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return file, nil, diags
	}
	raw, ddiags := decodeFile(file.Body)
	return file, raw, append(diags, ddiags...)
}

func decodeFile(body hcl.Body) (*rawFile, hcl.Diagnostics) {
	c, diags := body.Content(fileSchema)
	raw := &rawFile{}
	for _, b := range c.Blocks {
		switch b.Type {
		case "settings":
			ac, d := b.Body.Content(settingsSchema)
			diags = append(diags, d...)
			a := ac.Attributes
			raw.Settings = append(raw.Settings, &rawSettings{
				ChainPrefix: a["chain_prefix"], Node: a["node"], ClusterCIDRs: a["cluster_cidrs"],
				MasqueradeAll: a["masquerade_all"], MasqueradeBit: a["masquerade_bit"],
				NodePortAddresses: a["node_port_addresses"], NodePortRange: a["node_port_range"],
				LocalhostNodePorts: a["localhost_node_ports"], DefRange: b.DefRange,
			})
		case "service":
			s, d := decodeService(b)
			diags = append(diags, d...)
			raw.Services = append(raw.Services, s)
		}
	}
	return raw, diags
}

func decodeService(b *hcl.Block) (*rawService, hcl.Diagnostics) {
	c, diags := b.Body.Content(serviceSchema)
	a := c.Attributes
	s := &rawService{
		Name: b.Labels[0], NameRange: b.LabelRanges[0], DefRange: b.DefRange,
		Type: a["type"], ClusterIPs: a["cluster_ips"], ExternalIPs: a["external_ips"],
		LoadBalancerIPs: a["load_balancer_ips"], LoadBalancerSourceRanges: a["load_balancer_source_ranges"],
		ExternalTrafficPolicy: a["external_traffic_policy"], InternalTrafficPolicy: a["internal_traffic_policy"],
		HealthCheckNodePort: a["health_check_node_port"], SessionAffinity: a["session_affinity"],
		SessionAffinityTimeout: a["session_affinity_timeout"],
	}
	for _, nb := range c.Blocks {
		switch nb.Type {
		case "port":
			pc, d := nb.Body.Content(portSchema)
			diags = append(diags, d...)
			pa := pc.Attributes
			s.Ports = append(s.Ports, &rawPort{Name: pa["name"], Protocol: pa["protocol"], Port: pa["port"],
				TargetPort: pa["target_port"], NodePort: pa["node_port"], DefRange: nb.DefRange})
		case "endpoint":
			ec, d := nb.Body.Content(endpointSchema)
			diags = append(diags, d...)
			ea := ec.Attributes
			s.Endpoints = append(s.Endpoints, &rawEndpoint{Address: ea["address"], Node: ea["node"], Ready: ea["ready"],
				Serving: ea["serving"], Terminating: ea["terminating"], Ports: ea["ports"], DefRange: nb.DefRange})
		case "health_check":
			hc, d := nb.Body.Content(healthCheckSchema)
			diags = append(diags, d...)
			ha := hc.Attributes
			s.HealthChecks = append(s.HealthChecks, &rawHealthCheck{Protocol: ha["protocol"], Port: ha["port"],
				ServicePort: ha["service_port"], Path: ha["path"], Send: ha["send"], Expect: ha["expect"],
				Interval: ha["interval"], Timeout: ha["timeout"], Rise: ha["rise"], Fall: ha["fall"], DefRange: nb.DefRange})
		}
	}
	return s, diags
}

// state says what an attribute evaluated to.
type state uint8

const (
	unset state = iota // absent or null: the default applies
	set                // present and usable
	bad                // present but unusable; already reported
)

// item is one string of a list attribute with the range of its element, so
// that a bad element is pointed at, not the whole list.
type item struct {
	S     string
	Range hcl.Range
}

// decoder evaluates attributes into Go values and collects every
// diagnostic of a run, so that all errors are reported together.
type decoder struct {
	diags hcl.Diagnostics
	// deferred are the checks that need the settings, which may be in a
	// file read after the service.
	deferred []func(st *Settings, nodePortsOK bool)
}

// later defers a check until the settings are known.
func (d *decoder) later(check func(st *Settings, nodePortsOK bool)) {
	d.deferred = append(d.deferred, check)
}

// errorf adds an error. The string arguments are values from the
// configuration, or built from them, so each is cut to echo.Max bytes.
func (d *decoder) errorf(subject hcl.Range, summary, detailFormat string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = echo.String(s)
		}
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detailFormat, args...),
		Subject:  subject.Ptr(),
	})
}

// value evaluates expr without variables or functions: a configuration is
// data, and hcl reports any reference or call with its range.
func (d *decoder) value(expr hcl.Expression) (cty.Value, state) {
	v, diags := expr.Value(nil)
	d.diags = append(d.diags, diags...)
	switch {
	case diags.HasErrors():
		return cty.NilVal, bad
	case v.IsNull():
		return v, unset
	case !v.IsWhollyKnown() || v.IsMarked():
		// Cannot happen without an EvalContext; refuse rather than panic.
		d.errorf(expr.Range(), "unusable value", "The value must be a constant.")
		return cty.NilVal, bad
	}
	return v, set
}

// convert evaluates expr as type ty; what names the attribute and the type
// in the diagnostic, e.g. "port must be a whole number".
func (d *decoder) convert(expr hcl.Expression, subject hcl.Range, ty cty.Type, what string) (cty.Value, state) {
	v, st := d.value(expr)
	if st != set {
		return v, st
	}
	cv, err := convert.Convert(v, ty)
	if err != nil || !cv.IsWhollyKnown() {
		d.errorf(subject, "wrong value type", "%s, not %s.", what, v.Type().FriendlyName())
		return cty.NilVal, bad
	}
	if cv.IsNull() {
		return cv, unset
	}
	return cv, set
}

// str evaluates an optional string attribute.
func (d *decoder) str(a *hcl.Attribute) (string, state) {
	if a == nil {
		return "", unset
	}
	v, st := d.convert(a.Expr, a.Range, cty.String, a.Name+" must be a string")
	if st != set {
		return "", st
	}
	return v.AsString(), set
}

// num evaluates an optional whole-number attribute. Numbers too large for
// an int are clamped, which every range check then refuses.
func (d *decoder) num(a *hcl.Attribute) (int, state) {
	if a == nil {
		return 0, unset
	}
	return d.numExpr(a.Expr, a.Range, a.Name)
}

func (d *decoder) numExpr(expr hcl.Expression, subject hcl.Range, name string) (int, state) {
	v, st := d.convert(expr, subject, cty.Number, name+" must be a whole number")
	if st != set {
		return 0, st
	}
	bf := v.AsBigFloat()
	if bf.IsInf() || !bf.IsInt() {
		d.errorf(subject, "wrong value type", "%s must be a whole number, not %s.", name, bf.Text('g', 10))
		return 0, bad
	}
	i, acc := bf.Int64()
	switch {
	case acc == big.Below || i > math.MaxInt32:
		return math.MaxInt32, set
	case acc == big.Above || i < math.MinInt32:
		return math.MinInt32, set
	}
	return int(i), set
}

// flag evaluates an optional bool attribute.
func (d *decoder) flag(a *hcl.Attribute) (bool, state) {
	if a == nil {
		return false, unset
	}
	v, st := d.convert(a.Expr, a.Range, cty.Bool, a.Name+" must be true or false")
	if st != set {
		return false, st
	}
	return v.True(), set
}

// strList evaluates an optional list-of-strings attribute. A literal list
// is evaluated element by element so each element keeps its own range.
func (d *decoder) strList(a *hcl.Attribute) ([]item, state) {
	if a == nil {
		return nil, unset
	}
	what := a.Name + " must be a list of strings"
	if tup, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
		items := make([]item, 0, len(tup.Exprs))
		st := set
		for _, e := range tup.Exprs {
			v, est := d.convert(e, e.Range(), cty.String, what)
			switch est {
			case set:
				items = append(items, item{S: v.AsString(), Range: e.Range()})
			case unset:
				d.errorf(e.Range(), "null list element", "Remove the null from %s.", a.Name)
				st = bad
			default:
				st = bad
			}
		}
		return items, st
	}
	v, st := d.convert(a.Expr, a.Range, cty.List(cty.String), what)
	if st != set {
		return nil, st
	}
	var items []item
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() {
			d.errorf(a.Range, "null list element", "Remove the null from %s.", a.Name)
			return nil, bad
		}
		items = append(items, item{S: ev.AsString(), Range: a.Range})
	}
	return items, set
}

// portOverride is one entry of an endpoint's ports map.
type portOverride struct {
	Name       string
	Port       int
	KeyRange   hcl.Range
	ValueRange hcl.Range
}

// portMap evaluates an endpoint's ports map. A literal object is evaluated
// entry by entry so each key and value keeps its own range.
func (d *decoder) portMap(a *hcl.Attribute) ([]portOverride, state) {
	if a == nil {
		return nil, unset
	}
	if obj, ok := a.Expr.(*hclsyntax.ObjectConsExpr); ok {
		var out []portOverride
		st := set
		for _, it := range obj.Items {
			k, kst := d.convert(it.KeyExpr, it.KeyExpr.Range(), cty.String, "a key of ports must be a port name")
			if kst == unset {
				d.errorf(it.KeyExpr.Range(), "null map key", "Key ports by port name; \"\" is an unnamed port.")
			}
			n, vst := d.numExpr(it.ValueExpr, it.ValueExpr.Range(), "a value of ports")
			if vst == unset {
				d.errorf(it.ValueExpr.Range(), "null map value", "Give the target port as a number, or remove the entry.")
			}
			if kst != set || vst != set {
				st = bad
				continue
			}
			out = append(out, portOverride{Name: k.AsString(), Port: n, KeyRange: it.KeyExpr.Range(), ValueRange: it.ValueExpr.Range()})
		}
		return out, st
	}
	v, st := d.convert(a.Expr, a.Range, cty.Map(cty.Number), "ports must be a map of port name to port number")
	if st != set {
		return nil, st
	}
	m := v.AsValueMap()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []portOverride
	for _, k := range names {
		n, nst := d.numExpr(hcl.StaticExpr(m[k], a.Range), a.Range, "a value of ports")
		if nst != set {
			if nst == unset {
				d.errorf(a.Range, "null map value", "Give the target port of %q as a number.", k)
			}
			return nil, bad
		}
		out = append(out, portOverride{Name: k, Port: n, KeyRange: a.Range, ValueRange: a.Range})
	}
	return out, set
}
