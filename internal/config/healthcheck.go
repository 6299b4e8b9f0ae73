package config

import (
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

var checkProtocols = []string{CheckTCP, CheckHTTP, CheckUDP}

// Bounds of a health_check block. The number of checks needs no limit
// of its own: a service with a health_check has one check per endpoint
// (not per port) every interval, and at most MaxServiceEndpoints
// endpoints, so the checks of a configuration are bounded by its size
// (at the 100ms floor one service sends at most 50,000 a second). The
// ceilings keep a verdict within a few days at the very worst (100 checks
// an hour apart): past them a value is a slip of the unit, not a wish.
const (
	minCheckInterval  = 100 * time.Millisecond
	maxCheckInterval  = time.Hour
	checkIntervalSpan = "between 100ms and 1h" // the two above, as a user writes them
	maxCheckCount     = 100                    // rise and fall
)

// MaxCheckText bounds a health check's path, send and expect, in bytes: a
// check is sent every interval to every endpoint, and a datagram of this
// size crosses any path without fragments (IPv6's minimum MTU is 1280).
const MaxCheckText = 1024

// healthCheck decodes the service's health_check block, if it has one.
// It runs once the ports are decoded and sorted by name: with port = 0 a
// check uses the target port of a service port, by default the first of
// its transport in name order.
func (d *decoder) healthCheck(decl *svcDecl) {
	blocks := decl.raw.HealthChecks
	if len(blocks) == 0 {
		return
	}
	r := blocks[0]
	for _, extra := range blocks[1:] {
		d.errorf(extra.DefRange, "duplicate health_check block",
			"Service %q already has a health_check block at %s; a service has at most one, so merge the two.",
			decl.svc.Name, pos(r.DefRange))
	}
	hc := &HealthCheck{DeclRange: r.DefRange, Rise: DefaultCheckRise, Fall: DefaultCheckFall}
	hc.Protocol = d.enum(r.Protocol, CheckTCP, checkProtocols, "unknown health_check protocol")

	portOK := true
	switch v, s := d.num(r.Port); s {
	case set:
		hc.Port = v
		if v < 0 || v > maxPort {
			d.errorf(r.Port.Range, "health_check port out of range",
				"port is %d; the port checked must be between %d and %d, or 0 to check each endpoint's target port of service_port.",
				v, minPort, maxPort)
			portOK = false
		}
	case bad:
		portOK = false
	}
	name, nameState := d.str(r.ServicePort)
	switch {
	case nameState == set && hc.Port != 0 && portOK:
		d.errorf(r.ServicePort.Range, "service_port with a fixed port",
			"port = %d checks that port on every endpoint, and service_port only chooses the target port checked when port = 0; remove one of them.",
			hc.Port)
	case portOK && hc.Port == 0 && nameState != bad && hc.Protocol != "":
		d.checkedServicePort(decl, r, hc, name, nameState == set)
	}

	d.checkPath(r, hc)
	d.checkPayloads(r, hc)
	d.checkTiming(r, hc)
	for _, c := range []struct {
		a   *hcl.Attribute
		dst *int
		def int
	}{{r.Rise, &hc.Rise, DefaultCheckRise}, {r.Fall, &hc.Fall, DefaultCheckFall}} {
		if v, s := d.num(c.a); s == set {
			*c.dst = v
			if v < 1 || v > maxCheckCount {
				d.errorf(c.a.Range, "health_check "+c.a.Name+" out of range",
					"%s is %d; it must be between 1 and %d checks in a row (the default is %d).", c.a.Name, v, maxCheckCount, c.def)
			}
		}
	}
	decl.svc.HealthCheck = hc
}

// checkTransport is the protocol of the service ports a check of
// protocol proto can use the target port of.
func checkTransport(proto string) string {
	if proto == CheckUDP {
		return ProtoUDP
	}
	return ProtoTCP
}

// checkedServicePort sets hc.ServicePort for a check with port = 0: the
// port named (named is false when service_port is absent), else the first
// port of the check's transport in name order.
func (d *decoder) checkedServicePort(decl *svcDecl, r *rawHealthCheck, hc *HealthCheck, name string, named bool) {
	svc := decl.svc
	want := checkTransport(hc.Protocol)
	if named {
		for _, p := range svc.Ports {
			if p.Name != name {
				continue
			}
			if p.Protocol != "" && p.Protocol != want {
				d.errorf(r.ServicePort.Range, "service_port of another protocol",
					"service_port %q is a %s port, and %s checks need a %s one; name a %s port, or set port to the port to check.",
					name, p.Protocol, hc.Protocol, want, want)
			}
			hc.ServicePort = name
			return
		}
		names := make([]string, 0, len(svc.Ports))
		for _, p := range svc.Ports {
			names = append(names, p.Name)
		}
		d.errorf(r.ServicePort.Range, "unknown service_port",
			"service_port %q names no port of service %q; its ports are %s.", name, svc.Name, portNameList(names))
		return
	}
	for _, p := range svc.Ports {
		if p.Protocol == want {
			hc.ServicePort = p.Name
			return
		}
	}
	for _, p := range svc.Ports {
		if p.Protocol == "" {
			return // an unusable protocol, already reported: it might have fit
		}
	}
	if len(svc.Ports) == 0 {
		return // "service has no ports" says it
	}
	other := ""
	if hc.Protocol != CheckUDP {
		for _, p := range svc.Ports {
			if p.Protocol == ProtoUDP {
				other = ` (its UDP ports take protocol = "udp")`
				break
			}
		}
	}
	d.errorf(r.DefRange, "no port to check",
		"Service %q has no %s port, and a %s check with port = 0 checks the target port of one; set port to the port to check, or add a %s port%s.",
		svc.Name, want, hc.Protocol, want, other)
}

// checkPath decodes path: http only, a request path.
func (d *decoder) checkPath(r *rawHealthCheck, hc *HealthCheck) {
	if hc.Protocol == CheckHTTP {
		hc.Path = DefaultCheckPath
	}
	v, s := d.str(r.Path)
	if s != set {
		return
	}
	if hc.Protocol != CheckHTTP {
		if hc.Protocol != "" {
			d.onlyFor(r.Path, CheckHTTP)
		}
		return
	}
	hc.Path = v
	if _, err := url.ParseRequestURI(v); err != nil || !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t") {
		d.errorf(r.Path.Range, "invalid health_check path",
			`path %q is not a request path: it starts with "/" and holds no spaces or control characters (escape them as %%20), e.g. path = "/healthz".`, v)
		return
	}
	if len(v) > MaxCheckText {
		d.tooLong(r.Path, len(v))
	}
}

// checkPayloads decodes send and expect: udp only, as --probe's udp://.
func (d *decoder) checkPayloads(r *rawHealthCheck, hc *HealthCheck) {
	if hc.Protocol == CheckUDP {
		hc.Send = DefaultCheckSend
	}
	for _, c := range []struct {
		a   *hcl.Attribute
		dst *string
	}{{r.Send, &hc.Send}, {r.Expect, &hc.Expect}} {
		v, s := d.str(c.a)
		if s != set {
			continue
		}
		if hc.Protocol != CheckUDP {
			if hc.Protocol != "" {
				d.onlyFor(c.a, CheckUDP)
			}
			continue
		}
		*c.dst = v
		switch {
		case len(v) > MaxCheckText:
			d.tooLong(c.a, len(v))
		case v == "" && c.dst == &hc.Send:
			d.errorf(c.a.Range, "empty health_check send",
				`A udp check sends a datagram and waits for the reply, and an empty one is answered by few servers; remove send for the default %q, or give the payload your server answers.`,
				DefaultCheckSend)
		}
	}
}

func (d *decoder) onlyFor(a *hcl.Attribute, proto string) {
	d.errorf(a.Range, a.Name+" needs protocol "+proto,
		`%s applies to %s checks only; set protocol = %q, or remove %s.`, a.Name, proto, proto, a.Name)
}

func (d *decoder) tooLong(a *hcl.Attribute, n int) {
	d.errorf(a.Range, "health_check "+a.Name+" too long",
		"%s is %d bytes; a check sends at most %d, to every endpoint every interval.", a.Name, n, MaxCheckText)
}

// checkTiming decodes interval and timeout. timeout defaults to
// DefaultCheckTimeout, or to interval when that is shorter, so that a
// short interval alone is valid.
func (d *decoder) checkTiming(r *rawHealthCheck, hc *HealthCheck) {
	hc.Interval = DefaultCheckInterval
	intervalOK := true
	switch v, s := d.duration(r.Interval); s {
	case set:
		hc.Interval = v
		if v < minCheckInterval || v > maxCheckInterval {
			d.errorf(r.Interval.Range, "health_check interval out of range",
				"interval is %s; it must be %s (the default is %s).", v, checkIntervalSpan, DefaultCheckInterval)
			intervalOK = false
		}
	case bad:
		intervalOK = false
	}
	hc.Timeout = min(DefaultCheckTimeout, hc.Interval)
	v, s := d.duration(r.Timeout)
	if s != set {
		return
	}
	hc.Timeout = v
	switch {
	case v <= 0:
		d.errorf(r.Timeout.Range, "health_check timeout out of range",
			"timeout is %s; a check needs time to be answered: give it more than 0 and at most interval (the default is %s).", v, DefaultCheckTimeout)
	case intervalOK && v > hc.Interval:
		d.errorf(r.Timeout.Range, "health_check timeout longer than interval",
			"timeout is %s and interval %s; a check ends before the next one starts, so shorten timeout or lengthen interval.", v, hc.Interval)
	}
}

// duration evaluates an optional duration attribute, written as Go
// writes durations: "2s", "500ms", "1m30s".
func (d *decoder) duration(a *hcl.Attribute) (time.Duration, state) {
	v, s := d.str(a)
	if s != set {
		return 0, s
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		d.errorf(a.Range, "invalid duration",
			`%s %q is not a duration; write a number and a unit, e.g. %s = "2s" or "500ms".`, a.Name, v, a.Name)
		return 0, bad
	}
	return dur, set
}
