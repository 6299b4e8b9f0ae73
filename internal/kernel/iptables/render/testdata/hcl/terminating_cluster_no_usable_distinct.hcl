# TestTerminatingEndpointsTrafficPolicyCluster/no usable endpoints on any
# node: a LoadBalancer without node port, with ClientIP affinity. Upstream's
# service also sets healthCheckNodePort, which kube-proxy ignores with policy
# Cluster and config refuses there: omitted.
#
# Upstream lists 10.0.1.5 twice (on test-node and host-1), which config
# refuses (one address is one endpoint); this variant gives the host-1
# endpoint 10.0.1.6. Neither is usable, no endpoint chain is written, and the
# expected output is upstream's unchanged.
settings {
  chain_prefix         = "KUBE"
  node                 = "test-node"
  cluster_cidrs        = ["10.0.0.0/8"]
  node_port_range      = "1-65535"
  localhost_node_ports = true
}

service "ns1/svc1" {
  type                     = "LoadBalancer"
  cluster_ips              = ["172.30.1.1"]
  load_balancer_ips        = ["1.2.3.4"]
  external_traffic_policy  = "Cluster"
  session_affinity         = "ClientIP"
  session_affinity_timeout = 10800

  port {
    port = 80
  }

  endpoint {
    address     = "10.0.1.5"
    node        = "test-node"
    ready       = false
    serving     = false
    terminating = true
  }

  endpoint {
    address     = "10.0.1.6"
    node        = "host-1"
    ready       = false
    serving     = false
    terminating = true
  }
}
