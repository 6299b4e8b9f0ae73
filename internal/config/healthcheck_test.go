package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// parseOne parses one valid file and returns its services by name.
func parseOne(t *testing.T, src string) map[string]*Service {
	t.Helper()
	cfg, diags := Parse(map[string][]byte{"hc.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := map[string]*Service{}
	for _, s := range cfg.Services {
		out[s.Name] = s
	}
	return out
}

func withoutRange(hc *HealthCheck) HealthCheck {
	c := *hc
	c.DeclRange = hcl.Range{}
	return c
}

func TestHealthCheckDefaults(t *testing.T) {
	svcs := parseOne(t, `
service "none" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
}
service "tcp" {
  cluster_ips = ["10.0.0.2"]
  port {
    port = 80
  }

  health_check {
  }
}
service "http" {
  cluster_ips = ["10.0.0.3"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
  }
}
service "udp" {
  cluster_ips = ["10.0.0.4"]
  port {
    protocol = "UDP"
    port     = 53
  }
  health_check {
    protocol = "udp"
  }
}
service "fast" {
  cluster_ips = ["10.0.0.5"]
  port {
    port = 80
  }
  health_check {
    interval = "500ms"
  }
}
service "null" {
  cluster_ips = ["10.0.0.6"]
  port {
    port = 80
  }
  health_check {
    protocol = null
    port     = null
    interval = null
    rise     = null
  }
}
`)
	if hc := svcs["none"].HealthCheck; hc != nil {
		t.Errorf("a service without health_check has %+v", hc)
	}
	base := HealthCheck{Protocol: CheckTCP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	for name, want := range map[string]HealthCheck{
		"tcp":  base,
		"null": base,
		"http": func() HealthCheck { w := base; w.Protocol, w.Path = CheckHTTP, "/"; return w }(),
		"udp":  func() HealthCheck { w := base; w.Protocol, w.Send = CheckUDP, "svcnat-probe"; return w }(),
		// timeout defaults to the interval when that is shorter than 1s
		"fast": func() HealthCheck {
			w := base
			w.Interval, w.Timeout = 500*time.Millisecond, 500*time.Millisecond
			return w
		}(),
	} {
		hc := svcs[name].HealthCheck
		if hc == nil {
			t.Errorf("%s: no health check", name)
			continue
		}
		if got := withoutRange(hc); got != want {
			t.Errorf("%s: health check %+v, want %+v", name, withoutRange(hc), want)
		}
	}
	if r := svcs["tcp"].HealthCheck.DeclRange; r.Filename != "hc.hcl" || r.Start.Line != 14 {
		t.Errorf("DeclRange = %v, want hc.hcl line 14", r)
	}
}

func TestHealthCheckEveryAttribute(t *testing.T) {
	svcs := parseOne(t, `
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    port     = 8081
    path     = "/healthz?full=1"
    interval = "1m30s"
    timeout  = "5s"
    rise     = 1
    fall     = 100
  }
}
service "dns" {
  cluster_ips = ["10.0.0.2"]
  port {
    protocol = "UDP"
    port     = 53
  }
  health_check {
    protocol = "udp"
    send     = "ping"
    expect   = "pong"
    interval = "100ms"
    timeout  = "100ms"
  }
}
`)
	want := HealthCheck{Protocol: CheckHTTP, Port: 8081, Path: "/healthz?full=1",
		Interval: 90 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 100}
	if got := withoutRange(svcs["web"].HealthCheck); got != want {
		t.Errorf("web: %+v, want %+v", got, want)
	}
	want = HealthCheck{Protocol: CheckUDP, ServicePort: "", Send: "ping", Expect: "pong",
		Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 3}
	if got := withoutRange(svcs["dns"].HealthCheck); got != want {
		t.Errorf("dns: %+v, want %+v", got, want)
	}
}

// With port = 0 a check uses the target port of service_port, by default
// of the first port of its transport in name order (not source order).
func TestHealthCheckServicePort(t *testing.T) {
	const ports = `
  port {
    name = "web"
    port = 80
    target_port = 8080
  }
  port {
    name     = "dns"
    protocol = "UDP"
    port     = 53
    target_port = 5353
  }
  port {
    name = "admin"
    port = 9000
    target_port = 9090
  }
  endpoint {
    address = "10.1.0.1"
  }
  endpoint {
    address = "10.1.0.2"
    ports   = { admin = 9999, web = 8888 }
  }
`
	svcs := parseOne(t, `
service "tcp" {
  cluster_ips = ["10.0.0.1"]
`+ports+`
  health_check {
  }
}
service "http-named" {
  cluster_ips = ["10.0.0.2"]
`+ports+`
  health_check {
    protocol     = "http"
    service_port = "web"
  }
}
service "udp" {
  cluster_ips = ["10.0.0.3"]
`+ports+`
  health_check {
    protocol = "udp"
  }
}
service "fixed" {
  cluster_ips = ["10.0.0.4"]
`+ports+`
  health_check {
    port = 7000
  }
}
service "unnamed" {
  cluster_ips = ["10.0.0.5"]
  port {
    port = 80
  }
  health_check {
    service_port = ""
  }
}
`)
	for _, tc := range []struct {
		svc         string
		servicePort string
		checked     [2]int // on 10.1.0.1 and 10.1.0.2
	}{
		{"tcp", "admin", [2]int{9090, 9999}},
		{"http-named", "web", [2]int{8080, 8888}},
		{"udp", "dns", [2]int{5353, 5353}},
		{"fixed", "", [2]int{7000, 7000}},
	} {
		s := svcs[tc.svc]
		hc := s.HealthCheck
		if hc.ServicePort != tc.servicePort {
			t.Errorf("%s: ServicePort %q, want %q", tc.svc, hc.ServicePort, tc.servicePort)
		}
		for i, e := range s.Endpoints {
			if p, ok := hc.CheckedPort(s, e); !ok || p != tc.checked[i] {
				t.Errorf("%s: CheckedPort(%s) = %d, %v; want %d", tc.svc, e.Address, p, ok, tc.checked[i])
			}
		}
	}
	s := svcs["unnamed"]
	if p, ok := s.HealthCheck.CheckedPort(s, &Endpoint{Address: netip.MustParseAddr("10.1.0.9")}); !ok || p != 80 || s.HealthCheck.ServicePort != "" {
		t.Errorf("unnamed: CheckedPort = %d, %v", p, ok)
	}
}

// The diagnostics' exact wording: a summary that names the problem and a
// detail that says what to do, at the offending attribute's line.
func TestHealthCheckWording(t *testing.T) {
	svc := func(ports, body string) string {
		if ports == "" {
			ports = "  port {\n    port = 80\n  }\n"
		}
		return "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n" + ports + "  health_check {\n" + body + "  }\n}\n"
	}
	const line = 7 // of the first attribute in body, with the default ports
	udp := "  port {\n    name     = \"dns\"\n    protocol = \"UDP\"\n    port     = 53\n  }\n"
	for _, tc := range []struct {
		src, summary, detail string
		line                 int
	}{
		{svc("", "  }\n  health_check {\n"), "duplicate health_check block",
			`Service "web" already has a health_check block at bad.hcl:6:3; a service has at most one, so merge the two.`, line + 1},
		{svc("", "    protocol = \"grpc\"\n"), "unknown health_check protocol",
			`protocol "grpc" is not one of "tcp", "http" or "udp".`, line},
		{svc("", "    protocol = \"HTTP\"\n"), "unknown health_check protocol",
			`protocol "HTTP" is not one of "tcp", "http" or "udp". Did you mean "http"?`, line},
		{svc("", "    port = 70000\n"), "health_check port out of range",
			`port is 70000; the port checked must be between 1 and 65535, or 0 to check each endpoint's target port of service_port.`, line},
		{svc("", "    port = 81\n    service_port = \"\"\n"), "service_port with a fixed port",
			`port = 81 checks that port on every endpoint, and service_port only chooses the target port checked when port = 0; remove one of them.`, line + 1},
		{svc("", "    service_port = \"http\"\n"), "unknown service_port",
			`service_port "http" names no port of service "web"; its ports are "" (unnamed).`, line},
		{svc(udp, "    service_port = \"dns\"\n"), "service_port of another protocol",
			`service_port "dns" is a UDP port, and tcp checks need a TCP one; name a TCP port, or set port to the port to check.`, line + 2},
		{svc(udp, ""), "no port to check",
			`Service "web" has no TCP port, and a tcp check with port = 0 checks the target port of one; set port to the port to check, or add a TCP port (its UDP ports take protocol = "udp").`, line + 1},
		{svc("  port {\n    protocol = \"SCTP\"\n    port     = 7\n  }\n", "    protocol = \"udp\"\n"), "no port to check",
			`Service "web" has no UDP port, and a udp check with port = 0 checks the target port of one; set port to the port to check, or add a UDP port.`, line},
		{svc("", "    path = \"/\"\n"), "path needs protocol http",
			`path applies to http checks only; set protocol = "http", or remove path.`, line},
		{svc("", "    protocol = \"http\"\n    path = \"healthz\"\n"), "invalid health_check path",
			`path "healthz" is not a request path: it starts with "/" and holds no spaces or control characters (escape them as %20), e.g. path = "/healthz".`, line + 1},
		{svc("", "    protocol = \"http\"\n    path = \"/"+strings.Repeat("x", MaxCheckText)+"\"\n"), "health_check path too long",
			`path is 1025 bytes; a check sends at most 1024, to every endpoint every interval.`, line + 1},
		{svc("", "    send = \"ping\"\n"), "send needs protocol udp",
			`send applies to udp checks only; set protocol = "udp", or remove send.`, line},
		{svc("", "    expect = \"pong\"\n"), "expect needs protocol udp",
			`expect applies to udp checks only; set protocol = "udp", or remove expect.`, line},
		{svc(udp, "    protocol = \"udp\"\n    send = \"\"\n"), "empty health_check send",
			`A udp check sends a datagram and waits for the reply, and an empty one is answered by few servers; remove send for the default "svcnat-probe", or give the payload your server answers.`, line + 3},
		{svc("", "    interval = \"2\"\n"), "invalid duration",
			`interval "2" is not a duration; write a number and a unit, e.g. interval = "2s" or "500ms".`, line},
		{svc("", "    interval = \"90m\"\n"), "health_check interval out of range",
			`interval is 1h30m0s; it must be between 100ms and 1h (the default is 2s).`, line},
		{svc("", "    timeout = \"0s\"\n"), "health_check timeout out of range",
			`timeout is 0s; a check needs time to be answered: give it more than 0 and at most interval (the default is 1s).`, line},
		{svc("", "    timeout = \"3s\"\n"), "health_check timeout longer than interval",
			`timeout is 3s and interval 2s; a check ends before the next one starts, so shorten timeout or lengthen interval.`, line},
		{svc("", "    rise = 0\n"), "health_check rise out of range",
			`rise is 0; it must be between 1 and 100 checks in a row (the default is 2).`, line},
		{svc("", "    fall = 101\n"), "health_check fall out of range",
			`fall is 101; it must be between 1 and 100 checks in a row (the default is 3).`, line},
	} {
		_, diags := Parse(map[string][]byte{"bad.hcl": []byte(tc.src)})
		if len(diags) != 1 {
			t.Errorf("%s: %d diagnostics, want 1: %v", tc.summary, len(diags), diags)
			continue
		}
		d := diags[0]
		if d.Summary != tc.summary || d.Detail != tc.detail || d.Subject.Filename != "bad.hcl" || d.Subject.Start.Line != tc.line {
			t.Errorf("got  %s: %s; %s\nwant bad.hcl:%d: %s; %s", pos(*d.Subject), d.Summary, d.Detail, tc.line, tc.summary, tc.detail)
		}
	}
}
