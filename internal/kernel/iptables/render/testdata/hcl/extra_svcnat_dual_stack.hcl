# extra_svcnat_dual_stack: no upstream text. The default chain prefix
# (SVCNAT), node port range and localhost_node_ports (all left unset here),
# a dual-stack LoadBalancer with two protocols, and an SCTP ClusterIP
# service. Its expected output is the canonical goldens
# testdata/extra_svcnat_dual_stack.v4.golden and .v6.golden.
settings {
  node                = "test-node"
  cluster_cidrs       = ["10.64.0.0/14", "10.128.0.0/14", "fd00:10::/64"]
  node_port_addresses = ["192.168.0.0/24", "2001:db8::/64"]
}

service "default/web" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["10.32.0.10", "fd00:32::10"]
  external_ips                = ["192.168.99.10", "2001:db8:99::10"]
  load_balancer_ips           = ["198.51.100.7", "2001:db8:100::7"]
  load_balancer_source_ranges = ["192.168.0.0/16", "2001:db8::/32"]
  external_traffic_policy     = "Local"
  health_check_node_port      = 31999
  session_affinity            = "ClientIP"
  session_affinity_timeout    = 600

  port {
    name        = "http"
    port        = 80
    target_port = 8080
    node_port   = 30080
  }

  port {
    name      = "dns"
    protocol  = "UDP"
    port      = 53
    node_port = 30053
  }

  endpoint {
    address = "10.64.1.10"
    node    = "test-node"
  }

  endpoint {
    address = "10.64.2.10"
    node    = "other"
  }

  endpoint {
    address = "10.64.1.9"
    node    = "test-node"
  }

  endpoint {
    address = "fd00:10::a"
    node    = "test-node"
  }

  endpoint {
    address = "fd00:10::b"
    node    = "other"
  }
}

service "default/sig" {
  cluster_ips = ["10.32.0.11"]

  port {
    protocol = "SCTP"
    port     = 3868
  }

  endpoint {
    address = "10.64.3.1"
    node    = "other"
  }
}
