# TestMasqueradeRule, HasRandomFully=false: no services, the fixed chains.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}
