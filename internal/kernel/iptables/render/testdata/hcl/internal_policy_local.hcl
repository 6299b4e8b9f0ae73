# TestInternalTrafficPolicyE2E/internalTrafficPolicy is local and there are
# local endpoints.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  cluster_ips             = ["172.30.1.1"]
  internal_traffic_policy = "Local"

  port {
    port = 80
  }

  endpoint {
    address = "10.0.1.1"
    node    = "test-node"
  }

  endpoint {
    address = "10.0.1.2"
    node    = "host1"
  }

  endpoint {
    address = "10.0.1.3"
    node    = "host2"
  }
}
