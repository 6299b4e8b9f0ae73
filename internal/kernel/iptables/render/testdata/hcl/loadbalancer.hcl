# TestLoadBalancer: two load-balancer IPs with source ranges.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.41"]
  load_balancer_ips           = ["1.2.3.4", "5.6.7.8"]
  load_balancer_source_ranges = ["192.168.0.0/24", "203.0.113.0/25"]

  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }

  endpoint {
    address = "10.180.0.1"
  }
}
