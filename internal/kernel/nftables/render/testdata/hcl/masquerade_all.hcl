# masquerade_all without a pod CIDR, node ports on every local address
# (node_port_addresses unset): fib rules and no nodeport-ips set, no pod
# short-circuit, ClientIP affinity under external policy Local.
settings {
  node            = "test-node"
  masquerade_all  = true
  masquerade_bit  = 5
  node_port_range = "1-65535"
}

service "ns1/svc1" {
  type                     = "NodePort"
  cluster_ips              = ["172.30.0.41"]
  external_traffic_policy  = "Local"
  session_affinity         = "ClientIP"
  session_affinity_timeout = 300

  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }

  endpoint {
    address = "10.180.0.1"
    node    = "test-node"
  }

  endpoint {
    address = "10.180.1.1"
    node    = "node2"
  }
}
