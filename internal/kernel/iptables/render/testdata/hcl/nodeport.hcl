# TestNodePort: one NodePort service.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type        = "NodePort"
  cluster_ips = ["172.30.0.41"]

  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }

  endpoint {
    address = "10.180.0.1"
  }
}
