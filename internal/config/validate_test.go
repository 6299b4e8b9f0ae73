package config

import (
	"testing"
)

// badCase is one configuration that breaks one check and is otherwise
// valid, with want markers on the lines the diagnostics must point at.
type badCase struct {
	name  string
	files map[string]string
}

// badCases holds a case per check; FuzzParse seeds its corpus from them too.
var badCases = append(append(append([]badCase{}, structureAndServiceCases...), portAndEndpointCases...), healthCheckCases...)

// structureAndServiceCases cover hcl's structure, settings and service
// attributes; validate_ports_test.go has the rest.
var structureAndServiceCases = []badCase{
	// Structure: hcl's own diagnostics, with ranges.
	{"unknown top-level block", one(`
services "web" { # want: Unsupported block type
}
`)},
	{"unknown attribute", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  colour      = "red" # want: Unsupported argument
  port {
    port  = 80
    ports = 81 # want: Unsupported argument
  }
  endpoint {
    address = "10.1.0.1"
    weight  = 2 # want: Unsupported argument
  }
}
settings {
  chain = "X" # want: Unsupported argument
}
`)},
	{"unknown nested block", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
    tls { # want: Unsupported block type
    }
  }
}
`)},
	{"service without label", one(`
service { # want: Missing name for service
  cluster_ips = ["10.0.0.1"]
}
`)},
	{"service with two labels", one(`
service "default" "web" { # want: Extraneous label for service
  cluster_ips = ["10.0.0.1"]
}
`)},
	{"attribute twice", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  cluster_ips = ["10.0.0.2"] # want: Attribute redefined
  port {
    port = 80
  }
}
`)},
	{"syntax error", one(`
service "web" {
  cluster_ips = ["10.0.0.1"
  port { # want: Missing item separator
    port = 80
  }
}
`)},
	{"variables and functions", one(`
service "web" {
  cluster_ips = [var.ip] # want: Variables not allowed
  port {
    port = max(80, 81) # want: Function calls not allowed
  }
}
`)},
	{"wrong value types", one(`
service "web" {
  cluster_ips = "10.0.0.1" # want: wrong value type
  port {
    port = "eighty" # want: wrong value type
    target_port = 80.5 # want: wrong value type
  }
  endpoint {
    address = "10.1.0.1"
    ready   = "yes" # want: wrong value type
    ports   = { "" = "x" } # want: wrong value type
  }
}
`)},
	{"null list element", one(`
service "web" {
  cluster_ips = ["10.0.0.1", null] # want: null list element
  port {
    port = 80
  }
}
`)},

	// settings
	{"duplicate settings block", one(`
settings {
  node = "a"
}
settings { # want: duplicate settings block
  node = "b"
}
`)},
	{"duplicate settings block across files", map[string]string{
		"a.hcl": "settings {\n}\n",
		"b.hcl": "\nsettings { # want: duplicate settings block\n}\n",
	}},
	{"chain_prefix", map[string]string{
		"a.hcl": "settings {\n  chain_prefix = \"SVCNAT1\" # want: chain_prefix longer than six characters\n}\n",
		"b.hcl": "settings { # want: duplicate settings block\n  chain_prefix = \"kube\"\n}\n",
	}},
	{"chain_prefix invalid", one(`
settings {
  chain_prefix = "K-8" # want: invalid chain_prefix
}
`)},
	{"chain_prefix lower case", one(`
settings {
  chain_prefix = "kube" # want: invalid chain_prefix
}
`)},
	{"chain_prefix of docker", one(`
settings {
  chain_prefix = "DOCKER" # want: chain_prefix owned by other software
}
`)},
	{"chain_prefix naming iptables-nft's table", one(`
settings {
  chain_prefix = "NAT" # want: chain_prefix owned by other software
}
`)},
	{"masquerade_bit", one(`
settings {
  masquerade_bit = 32 # want: masquerade_bit out of range
}
`)},
	{"masquerade_bit negative", one(`
settings {
  masquerade_bit = -1 # want: masquerade_bit out of range
}
`)},
	{"node_port_range syntax", one(`
settings {
  node_port_range = "30000:32767" # want: invalid node_port_range
}
`)},
	{"node_port_range reversed", one(`
settings {
  node_port_range = "32767-30000" # want: invalid node_port_range
}
`)},
	{"node_port_range zero", one(`
settings {
  node_port_range = "0-100" # want: invalid node_port_range
}
`)},
	{"settings node name", one(`
settings {
  node = "Worker_1" # want: invalid node name
}
`)},
	{"malformed CIDRs", one(`
settings {
  cluster_cidrs       = ["10.64.0.0/33", "10.64.0.0"] # want: invalid CIDR ; invalid CIDR
  node_port_addresses = [
    "10.0.0.1/8", # want: invalid CIDR
    "fd00::/64",
    "fd00::/64", # want: duplicate CIDR
    "::1.2.3.0/120", # want: invalid CIDR
    "::/64",
  ]
}
`)},

	// service attributes
	{"invalid service names", one(`
service "Web" { # want: invalid service name
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
}
service "a/b/c" { # want: invalid service name
  cluster_ips = ["10.0.0.2"]
  port {
    port = 80
  }
}
service "-web" { # want: invalid service name
  cluster_ips = ["10.0.0.3"]
  port {
    port = 80
  }
}
`)},
	{"unknown enum values", one(`
service "web" {
  type                    = "Nodeport" # want: unknown service type
  cluster_ips             = ["10.0.0.1"]
  external_traffic_policy = "local" # want: unknown traffic policy
  internal_traffic_policy = "Global" # want: unknown traffic policy
  session_affinity        = "Sticky" # want: unknown session affinity
  port {
    protocol  = "tcp" # want: unknown protocol
    port      = 80
    node_port = 30080
  }
}
`)},
	{"no cluster IP", one(`
service "web" { # want: service has no cluster IP
  port {
    port = 80
  }
}
service "api" {
  cluster_ips = [] # want: service has no cluster IP
  port {
    port = 80
  }
}
`)},
	{"no ports", one(`
service "web" { # want: service has no ports
  cluster_ips = ["10.0.0.1"]
}
`)},
	{"malformed IPs", one(`
service "web" {
  cluster_ips  = ["10.0.0.300"] # want: invalid IP address
  external_ips = [
    "fe80::1%eth0", # want: invalid IP address
    "10.0.0.0/24", # want: invalid IP address
    "::ffff:10.0.0.9", # want: invalid IP address
    "::1.2.3.4", # want: invalid IP address
    "::102:304", # want: invalid IP address
  ]
  port {
    port = 80
  }
  endpoint {
    address = "10.1.0.1/32" # want: invalid IP address
  }
}
`)},
	{"special IPs", one(`
service "web" {
  cluster_ips  = ["127.0.0.1"] # want: invalid IP address
  external_ips = ["0.0.0.0", "224.0.0.1"] # want: invalid IP address ; invalid IP address
  port {
    port = 80
  }
  endpoint {
    address = "169.254.1.1" # want: invalid IP address
  }
}
`)},
	{"duplicate address in a list", one(`
service "web" {
  cluster_ips  = ["10.0.0.1"]
  external_ips = ["192.168.0.1", "192.168.0.1"] # want: duplicate address
  port {
    port = 80
  }
}
`)},
	{"cluster IP families", one(`
service "web" {
  cluster_ips = ["10.0.0.1", "10.0.0.2"] # want: two cluster IPs of one family
  port {
    port = 80
  }
}
service "api" {
  cluster_ips = ["10.0.0.3", "fd00::3", "fd00::4"] # want: two cluster IPs of one family
  port {
    port = 80
  }
}
`)},
	{"IP family mismatch", one(`
service "web" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["10.0.0.1"]
  external_ips                = ["fd00::9"] # want: IP family mismatch
  load_balancer_ips           = ["203.0.113.1", "2001:db8::1"] # want: IP family mismatch
  load_balancer_source_ranges = ["2001:db8::/32"] # want: IP family mismatch
  port {
    port = 80
  }
  endpoint {
    address = "fd00:1::1" # want: IP family mismatch
  }
}
service "api" {
  cluster_ips = ["fd00::10"]
  port {
    port = 80
  }
  endpoint {
    address = "10.1.0.1" # want: IP family mismatch
  }
}
`)},
	{"ports out of range", one(`
service "web" {
  type                    = "LoadBalancer"
  cluster_ips             = ["10.0.0.1"]
  external_traffic_policy = "Local"
  health_check_node_port  = 70000 # want: health_check_node_port out of range
  port {
    name        = "a"
    port        = 0 # want: port out of range
    target_port = 65536 # want: target_port out of range
    node_port   = -1 # want: node_port out of range
  }
  port {
    name      = "b"
    port      = 65536 # want: port out of range
    node_port = 70000 # want: node_port out of range
  }
  endpoint {
    address = "10.1.0.1"
    ports   = { a = 0, b = 99999 } # want: port out of range ; port out of range
  }
}
`)},
	{"node ports outside the default range", one(`
service "web" {
  type                    = "LoadBalancer"
  cluster_ips             = ["10.0.0.1"]
  external_traffic_policy = "Local"
  health_check_node_port  = 10256 # want: health_check_node_port outside node_port_range
  port {
    port      = 80
    node_port = 8080 # want: node_port outside node_port_range
  }
}
`)},
	{"node ports outside a configured range", one(`
settings {
  node_port_range = "31000-31999"
}
service "web" {
  type        = "NodePort"
  cluster_ips = ["10.0.0.1"]
  port {
    port      = 80
    node_port = 30080 # want: node_port outside node_port_range
  }
}
`)},
	{"node_port on ClusterIP", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port      = 80
    node_port = 30080 # want: node_port on a ClusterIP service
  }
}
`)},
	{"NodePort without node_port", one(`
service "web" {
  type        = "NodePort"
  cluster_ips = ["10.0.0.1"]
  port { # want: NodePort service port without node_port
    port = 80
  }
}
`)},
	{"health_check_node_port placement", one(`
service "web" {
  cluster_ips            = ["10.0.0.1"]
  health_check_node_port = 30100 # want: health_check_node_port needs type LoadBalancer
  port {
    port = 80
  }
}
service "np" {
  type                    = "NodePort"
  cluster_ips             = ["10.0.0.3"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30102 # want: health_check_node_port needs type LoadBalancer
  port {
    port      = 80
    node_port = 30080
  }
}
service "lb" {
  type                   = "LoadBalancer"
  cluster_ips            = ["10.0.0.2"]
  health_check_node_port = 30101 # want: health_check_node_port without external_traffic_policy Local
  port {
    port = 80
  }
}
`)},
	{"load balancer attributes on other types", one(`
service "web" {
  type                        = "NodePort"
  cluster_ips                 = ["10.0.0.1"]
  load_balancer_ips           = ["203.0.113.1"] # want: load_balancer_ips needs type LoadBalancer
  load_balancer_source_ranges = ["198.51.100.0/24"] # want: load_balancer_source_ranges needs type LoadBalancer
  port {
    port      = 80
    node_port = 30080
  }
}
`)},
	{"external_traffic_policy on an internal service", one(`
service "web" {
  cluster_ips             = ["10.0.0.1"]
  external_traffic_policy = "Local" # want: external_traffic_policy Local on an internal service
  port {
    port = 80
  }
}
`)},
	{"session affinity timeout", one(`
service "web" {
  cluster_ips              = ["10.0.0.1"]
  session_affinity         = "ClientIP"
  session_affinity_timeout = 86401 # want: session_affinity_timeout out of range
  port {
    port = 80
  }
}
service "api" {
  cluster_ips              = ["10.0.0.2"]
  session_affinity_timeout = 0 # want: session_affinity_timeout out of range ; session_affinity_timeout without ClientIP affinity
  port {
    port = 80
  }
}
`)},
}

func TestBadInput(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse(toBytes(tc.files))
			if !diags.HasErrors() {
				t.Fatalf("no errors")
			}
			if cfg == nil || cfg.Services != nil || len(cfg.Files) == 0 {
				t.Errorf("on error Parse must return a Config with only Files set, got %+v", cfg)
			}
			checkWants(t, tc.files, diags)
			for _, d := range diags {
				if d.Summary == "" || d.Detail == "" {
					t.Errorf("diagnostic %s lacks a summary or a detail", d)
				}
			}
		})
	}
}

// Things that look like clashes but are not.
func TestNotClashes(t *testing.T) {
	src := `
service "web" {
  type        = "NodePort"
  cluster_ips = ["10.0.0.1"]
  port {
    name      = "http"
    port      = 80
    node_port = 30080
  }
  port {
    name      = "dns"
    protocol  = "UDP"
    port      = 80
    node_port = 30080
  }
}
service "api" {
  cluster_ips  = ["10.0.0.2"]
  external_ips = ["10.0.0.2"]
  port {
    port = 80
  }
}
service "single" {
  cluster_ips = ["10.0.0.3"]
  port {
    name = ""
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
    ports   = { "" = 8080 }
  }
}
`
	_, diags := Parse(map[string][]byte{"ok.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
}
