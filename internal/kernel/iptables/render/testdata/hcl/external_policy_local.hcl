# TestExternalTrafficPolicyLocal: a LoadBalancer with external traffic
# policy Local, one remote and one local endpoint.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.41"]
  external_ips            = ["192.168.99.11"]
  load_balancer_ips       = ["1.2.3.4"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30000

  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }

  endpoint {
    address = "10.180.0.1"
  }

  endpoint {
    address = "10.180.2.1"
    node    = "test-node"
  }
}
