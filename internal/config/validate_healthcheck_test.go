package config

import "strings"

// healthCheckCases cover the health_check block.
var healthCheckCases = []badCase{
	{"unknown health_check attribute and block", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    method = "GET" # want: Unsupported argument
    header { # want: Unsupported block type
    }
  }
}
`)},
	{"duplicate health_check block", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
  }
  health_check { # want: duplicate health_check block
    protocol = "http"
  }
}
`)},
	{"health_check protocol", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    protocol = "TCP" # want: unknown health_check protocol
    path     = "/x"
    send     = "ping"
  }
}
`)},
	{"health_check port", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    port = 65536 # want: health_check port out of range
    service_port = "nope"
  }
}
service "api" {
  cluster_ips = ["10.0.0.2"]
  port {
    port = 80
  }
  health_check {
    port = -1 # want: health_check port out of range
  }
}
`)},
	{"service_port with a fixed port", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    port         = 8080
    service_port = "" # want: service_port with a fixed port
  }
}
`)},
	{"unknown service_port", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = "http"
    port = 80
  }
  port {
    name     = "dns"
    protocol = "UDP"
    port     = 53
  }
  health_check {
    service_port = "https" # want: unknown service_port
  }
}
`)},
	{"service_port of another protocol", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    name = "http"
    port = 80
  }
  port {
    name     = "dns"
    protocol = "UDP"
    port     = 53
  }
  health_check {
    protocol     = "http"
    service_port = "dns" # want: service_port of another protocol
  }
}
service "api" {
  cluster_ips = ["10.0.0.2"]
  port {
    name = "http"
    port = 80
  }
  health_check {
    protocol     = "udp"
    service_port = "http" # want: service_port of another protocol
  }
}
`)},
	{"no port to check", one(`
service "dns" {
  cluster_ips = ["10.0.0.1"]
  port {
    protocol = "UDP"
    port     = 53
  }
  health_check { # want: no port to check
  }
}
service "web" {
  cluster_ips = ["10.0.0.2"]
  port {
    name     = "sctp"
    protocol = "SCTP"
    port     = 7
  }
  port {
    name = "http"
    port = 80
  }
  health_check { # want: no port to check
    protocol = "udp"
  }
}
`)},
	{"path only with http", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    path = "/healthz" # want: path needs protocol http
  }
}
`)},
	{"invalid path", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    path     = "healthz" # want: invalid health_check path
  }
}
service "api" {
  cluster_ips = ["10.0.0.2"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    path     = "/health z" # want: invalid health_check path
  }
}
service "db" {
  cluster_ips = ["10.0.0.3"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    path     = "/%zz" # want: invalid health_check path
  }
}
service "mq" {
  cluster_ips = ["10.0.0.4"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    path     = "/a\r\nHost: evil" # want: invalid health_check path
  }
}
`)},
	{"send and expect only with udp", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    send     = "ping" # want: send needs protocol udp
    expect   = "pong" # want: expect needs protocol udp
  }
}
`)},
	{"empty send", one(`
service "dns" {
  cluster_ips = ["10.0.0.1"]
  port {
    protocol = "UDP"
    port     = 53
  }
  health_check {
    protocol = "udp"
    send     = "" # want: empty health_check send
    expect   = ""
  }
}
`)},
	{"durations", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    interval = "2" # want: invalid duration
    timeout  = 1 # want: invalid duration
  }
}
service "api" {
  cluster_ips = ["10.0.0.2"]
  port {
    port = 80
  }
  health_check {
    interval = "50ms" # want: health_check interval out of range
    timeout  = "0s" # want: health_check timeout out of range
  }
}
service "db" {
  cluster_ips = ["10.0.0.3"]
  port {
    port = 80
  }
  health_check {
    interval = "2h" # want: health_check interval out of range
    timeout  = "-1s" # want: health_check timeout out of range
  }
}
service "mq" {
  cluster_ips = ["10.0.0.4"]
  port {
    port = 80
  }
  health_check {
    timeout = "3s" # want: health_check timeout longer than interval
  }
}
`)},
	{"rise and fall", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    rise = 0 # want: health_check rise out of range
    fall = 101 # want: health_check fall out of range
  }
}
service "api" {
  cluster_ips = ["10.0.0.2"]
  port {
    port = 80
  }
  health_check {
    rise = 1.5 # want: wrong value type
    fall = "x" # want: wrong value type
  }
}
`)},
	{"health_check text too long", one(`
service "web" {
  cluster_ips = ["10.0.0.1"]
  port {
    port = 80
  }
  health_check {
    protocol = "http"
    path     = "/` + strings.Repeat("a", MaxCheckText) + `" # want: health_check path too long
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
    send     = "` + strings.Repeat("a", MaxCheckText+1) + `" # want: health_check send too long
    expect   = "` + strings.Repeat("a", MaxCheckText+1) + `" # want: health_check expect too long
  }
}
`)},
}
