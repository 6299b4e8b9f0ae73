package config

// portAndEndpointCases cover port and endpoint blocks and the checks
// across services.
var portAndEndpointCases = []badCase{
	// ports
	{"missing port", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port { # want: missing port
    name = "http"
  }
}
`)},
	{"unnamed port in a multi-port service", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port { # want: unnamed port in a multi-port service
    port = 80
  }
  port {
    name = "https"
    port = 443
  }
}
`)},
	{"duplicate port names", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = "http"
    port = 80
  }
  port {
    name = "http" # want: duplicate port name
    port = 8080
  }
}
`)},
	{"invalid port name", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = "HTTP" # want: invalid port name
    port = 80
  }
}
`)},

	// endpoints
	{"missing address", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  endpoint { # want: missing address
    node = "a"
  }
}
`)},
	{"duplicate endpoint addresses", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
  }
  endpoint {
    address = "10.1.0.1" # want: duplicate endpoint address
  }
}
`)},
	{"endpoint node name", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
    node    = "worker 2" # want: invalid node name
  }
}
`)},
	{"endpoint ports keys", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = "http"
    port = 80
  }
  endpoint {
    address = "10.1.0.1"
    ports   = { htp = 8080 } # want: unknown port name in ports
  }
  endpoint {
    address = "10.1.0.2"
    ports   = { "" = 8080 } # want: unknown port name in ports
  }
  endpoint {
    address = "10.1.0.3"
    ports   = { http = 8080, "http" = 8081 } # want: duplicate key in ports
  }
}
`)},
	{"endpoint conditions", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  endpoint {
    address     = "10.1.0.1"
    terminating = true # want: ready endpoint marked terminating
  }
  endpoint {
    address = "10.1.0.2"
    serving = false # want: ready endpoint not serving
  }
  endpoint {
    address     = "10.1.0.3"
    ready       = false
    serving     = false
    terminating = true
  }
}
`)},

	// across services
	{"duplicate service names across files", map[string]string{
		"a.hcl": "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 80\n  }\n}\n",
		"b.hcl": "service \"web\" { # want: duplicate service name\n  cluster_ips = [\"10.0.0.2\"]\n  port {\n    port = 80\n  }\n}\n",
	}},
	{"duplicate cluster IP, port and protocol", one(`
service "web" {
  cluster_ips = ["10.0.0.1", "fd00::1"]
  port {
    port = 80
  }
}
service "api" {
  cluster_ips = ["fd00::1"]
  port {
    name = "http"
    port = 80 # want: duplicate service address and port
  }
  port {
    name     = "dns"
    protocol = "UDP"
    port     = 80
  }
}
service "self" {
  cluster_ips = ["10.0.0.3"]
  port {
    name = "a"
    port = 80
  }
  port {
    name = "b"
    port = 80 # want: duplicate service address and port
  }
}
`)},
	{"external IP clashes with another service", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
}
service "api" {
  cluster_ips  = ["10.0.0.2"]
  external_ips = ["10.0.0.1"]
  port {
    port = 80 # want: duplicate service address and port
  }
}
`)},
	{"duplicate node ports", one(`
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
    port      = 53
    node_port = 30080
  }
}
service "api" {
  type                    = "LoadBalancer"
  cluster_ips             = ["10.0.0.2"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30081
  port {
    port      = 80
    node_port = 30080 # want: duplicate node port
  }
}
service "hc" {
  type        = "NodePort"
  cluster_ips = ["10.0.0.3"]
  port {
    port      = 80
    node_port = 30081 # want: duplicate node port
  }
}
`)},
}
