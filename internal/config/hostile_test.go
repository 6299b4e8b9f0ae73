package config

import (
	"fmt"
	"strings"
	"testing"
)

// hclQuote writes s as an HCL quoted string, so the test can put any
// bytes into a label or attribute.
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case (r == '$' || r == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(r)
			b.WriteRune(r) // $${ and %%{ are literal
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// hostileNames try to end an iptables-restore line early, start a comment,
// add a match or a target, or sneak past a byte-wise check.
var hostileNames = []string{
	`web" -j ACCEPT`,
	`web -j ACCEPT`,
	"web\n-A INPUT -j ACCEPT",
	"web\r-A INPUT -j ACCEPT",
	"web\n",
	"web\t",
	"web\x00",
	`web#x`,
	`web # -j ACCEPT`,
	`'web'`,
	`"web"`,
	`web;reboot`,
	`$(reboot)`,
	"`reboot`",
	`${web}`,
	`web,x`,
	`web:x`,
	`web\x`,
	`-j`,
	`--comment`,
	`wéb`,
	"ｗｅｂ",       // full-width letters
	"web\u200b", // zero-width space
	``,
	`Web`,
	`web-`,
	`.web`,
	strings.Repeat("a", 254),
}

func TestHostileNames(t *testing.T) {
	for _, name := range hostileNames {
		for _, tc := range []struct {
			where, summary, src string
		}{
			{"service name", "invalid service name", `
service ` + hclQuote(name) + ` {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
}`},
			{"service namespace", "invalid service name", `
service ` + hclQuote(name+"/web") + ` {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
}`},
			{"service name after namespace", "invalid service name", `
service ` + hclQuote("default/"+name) + ` {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
}`},
			{"port name", "invalid port name", `
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = ` + hclQuote(name) + `
    port = 80
  }
}`},
			{"endpoint node", "invalid node name", `
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
    node    = ` + hclQuote(name) + `
  }
}`},
			{"settings node", "invalid node name", `
settings {
  node = ` + hclQuote(name) + `
}`},
			{"endpoint ports key", "unknown port name in ports", `
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = "http"
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
    ports   = { ` + hclQuote(name) + ` = 8080 }
  }
}`},
		} {
			if name == "" && tc.where == "port name" {
				continue // "" is the unnamed port, which is valid
			}
			t.Run(fmt.Sprintf("%s %q", tc.where, name), func(t *testing.T) {
				cfg, diags := Parse(map[string][]byte{"hostile.hcl": []byte(tc.src)})
				if !diags.HasErrors() {
					t.Fatalf("accepted: %+v", cfg.Services)
				}
				found := false
				for _, d := range diags {
					found = found || d.Summary == tc.summary
				}
				if !found {
					t.Errorf("refused, but not with %q: %v", tc.summary, diags)
				}
				if cfg.Services != nil {
					t.Errorf("services returned despite errors")
				}
			})
		}
	}
}

func TestHostileChainPrefix(t *testing.T) {
	for _, p := range []string{"KUBE -j", "KUBE\n", "KUBE#", `KU"BE`, "", "KUBE-", "K\u0130"} {
		src := "settings {\n  chain_prefix = " + hclQuote(p) + "\n}\n"
		_, diags := Parse(map[string][]byte{"p.hcl": []byte(src)})
		if !diags.HasErrors() || diags[0].Summary != "invalid chain_prefix" {
			t.Errorf("chain_prefix %q: %v", p, diags)
		}
	}
}

// Comments are HCL's, not the configuration's: whatever they hold never
// reaches a name.
func TestCommentsDoNotReachNames(t *testing.T) {
	src := `
# service "evil -j ACCEPT" {
service "web" { # -j ACCEPT "
  // name = "x -j DROP"
  cluster_ips = ["10.0.0.1"] /* " -j ACCEPT */
  port {
    name = "http" # " -A INPUT -j ACCEPT
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
    node    = "worker1" # -j ACCEPT
  }
}
`
	cfg, diags := Parse(map[string][]byte{"c.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := cfg.Services
	if len(s) != 1 || s[0].Name != "web" || s[0].Ports[0].Name != "http" || s[0].Endpoints[0].Node != "worker1" {
		t.Errorf("names changed by comments: %+v", s[0])
	}
}

func TestNameValidators(t *testing.T) {
	for _, tc := range []struct {
		name      string
		svc, port bool
	}{
		{"web", true, true},
		{"default/web", true, false},
		{"a", true, true},
		{"a.b-c9", true, true},
		{"0", true, true},
		{strings.Repeat("a", 63), true, true},
		{strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63), true, false},
		{"a//b", false, false},
		{"/web", false, false},
		{"web/", false, false},
	} {
		if got := ValidServiceName(tc.name); got != tc.svc {
			t.Errorf("ValidServiceName(%q) = %v", tc.name, got)
		}
		if got := ValidName(tc.name); got != tc.port {
			t.Errorf("ValidName(%q) = %v", tc.name, got)
		}
	}
	for _, n := range hostileNames {
		if ValidServiceName(n) || ValidName(n) || ValidNodeName(n) {
			t.Errorf("hostile name %q accepted", n)
		}
	}
	if !ValidNodeName(strings.Repeat("a", 253)) || ValidNodeName(strings.Repeat("a", 254)) {
		t.Errorf("node name length limit is not 253")
	}
}
