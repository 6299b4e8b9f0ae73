# TestEnableLocalhostNodePortsIPv6 with unicast endpoints. Upstream's endpoint
# addresses ff06::c1 and ff06::c2 are multicast, which config refuses (a
# multicast address cannot be a DNAT backend), so this variant uses
# fd00:10::c1 and fd00:10::c2. Its expected output,
# testdata/localhost_nodeports_ipv6_enabled_unicast.kube-proxy, is upstream's
# text with those addresses replaced and the two KUBE-SEP- hashes
# recomputed; TestHCLVariantExpectedDerived checks that derivation.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type                    = "NodePort"
  cluster_ips             = ["fd00:ab34::20"]
  external_traffic_policy = "Local"

  port {
    name      = "p80"
    port      = 80
    node_port = 30001
  }

  endpoint {
    address = "fd00:10::c1"
  }

  endpoint {
    address = "fd00:10::c2"
    node    = "test-node"
  }
}
