# edge-2 replaces shared/settings.hcl (same file name): its node ports
# answer only on its public uplink.
settings {
  cluster_cidrs       = ["10.64.0.0/14"]
  node_port_addresses = ["198.51.100.0/24"]
}
