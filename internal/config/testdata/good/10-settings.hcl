# Settings with every attribute set away from its default.
settings {
  chain_prefix         = "KUBE"
  node                 = "worker02"
  cluster_cidrs        = ["10.64.0.0/14", "fd00:10:64::/48"]
  masquerade_all       = true
  masquerade_bit       = 15
  node_port_addresses  = ["192.168.1.0/24"]
  node_port_range      = "30000-30999"
  localhost_node_ports = true
}

# Defaults only: one port, one cluster IP.
service "dns" {
  cluster_ips = ["10.32.0.10"]

  port {
    port = 53
  }
}
