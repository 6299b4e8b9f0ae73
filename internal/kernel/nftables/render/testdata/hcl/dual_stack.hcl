# IPv4 and IPv6: a dual-stack load balancer with source ranges in both
# families and ClientIP affinity, and an IPv6-only service. The IPv6 table
# holds only the IPv6 cluster IPs' ports.
settings {
  node                = "test-node"
  cluster_cidrs       = ["10.0.0.0/8", "fd00:10::/64"]
  node_port_range     = "1-65535"
  node_port_addresses = ["192.168.0.2/32", "2001:db8::1/128"]
}

service "ns1/dual" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.61", "fd00:10:96::61"]
  external_ips                = ["192.168.99.61", "2001:db8:99::61"]
  load_balancer_ips           = ["1.2.3.61", "2001:db8:2::61"]
  load_balancer_source_ranges = ["203.0.113.0/25", "2001:db8:1::/64"]
  session_affinity            = "ClientIP"

  port {
    name      = "https"
    port      = 443
    node_port = 3061
  }

  endpoint {
    address = "10.180.0.61"
    node    = "test-node"
  }

  endpoint {
    address = "fd00:10::61"
    node    = "test-node"
  }

  endpoint {
    address = "fd00:10::62"
    node    = "node2"
  }
}

service "ns2/v6-only" {
  cluster_ips = ["fd00:10:96::62"]

  port {
    name = "http"
    port = 80
  }

  endpoint {
    address = "fd00:10::63"
    node    = "node2"
  }

  endpoint {
    address = "fd00:10::64"
    node    = "test-node"
  }
}
