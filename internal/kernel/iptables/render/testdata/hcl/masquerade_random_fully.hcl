# TestMasqueradeRule, HasRandomFully=true: no services, the fixed chains;
# --random-fully comes from the render options, not the configuration.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}
