# TestOnlyLocalNodePorts: a NodePort service with external traffic policy
# Local, node ports on 192.168.0.0/24 and 2001:db8::/64.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_addresses  = ["192.168.0.0/24", "2001:db8::/64"]
  node_port_range      = "1-65535"
  localhost_node_ports = false
}

service "ns1/svc1" {
  type                    = "NodePort"
  cluster_ips             = ["172.30.0.41"]
  external_traffic_policy = "Local"

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
