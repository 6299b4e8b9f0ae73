# TestHealthCheckNodePort: a LoadBalancer with external traffic policy
# Local, a health check node port and no endpoints, node ports on
# 127.0.0.0/8 only.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_addresses  = ["127.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.42"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30000

  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }
}
