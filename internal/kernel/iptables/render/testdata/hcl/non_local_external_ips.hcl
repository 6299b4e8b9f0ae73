# TestNonLocalExternalIPs: a ClusterIP service with an external IP and
# external traffic policy Cluster.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  cluster_ips  = ["172.30.0.41"]
  external_ips = ["192.168.99.11"]

  port {
    name = "p80"
    port = 80
  }

  endpoint {
    address = "10.180.0.1"
  }

  endpoint {
    address = "10.180.2.1"
    node    = "test-node"
  }
}
