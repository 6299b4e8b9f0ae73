# Several errors in one file: every one is reported in one run, in order.
settings {
  chain_prefix   = "SVCNAT_X" # want: invalid chain_prefix
  masquerade_bit = 40 # want: masquerade_bit out of range
}

service "Default/Web" { # want: invalid service name
  type        = "Nodeport" # want: unknown service type
  cluster_ips = ["10.32.0.300"] # want: invalid IP address
  colour      = "blue" # want: Unsupported argument

  port {
    name = "http"
    port = 70000 # want: port out of range
  }

  port { # want: unnamed port in a multi-port service
    port = 443
  }

  endpoint {
    address = "10.64.0.1"
    node    = "Worker 1" # want: invalid node name
    ports   = { htp = 8080 } # want: unknown port name in ports
  }
}

service "api" {
  cluster_ips = ["10.32.0.62"]
  port {
    port      = 80
    node_port = 30080 # want: node_port on a ClusterIP service
  }
}
