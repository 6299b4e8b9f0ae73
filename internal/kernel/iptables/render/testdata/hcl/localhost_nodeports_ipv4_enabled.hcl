# TestEnableLocalhostNodePortsIPv4: a NodePort service with external traffic
# policy Local, localhost node ports on, no cluster CIDR.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type                    = "NodePort"
  cluster_ips             = ["10.69.0.10"]
  external_traffic_policy = "Local"

  port {
    name      = "p80"
    port      = 80
    node_port = 30001
  }

  endpoint {
    address = "10.244.0.1"
  }

  endpoint {
    address = "10.244.2.1"
    node    = "test-node"
  }
}
