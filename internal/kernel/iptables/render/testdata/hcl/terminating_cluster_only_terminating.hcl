# TestTerminatingEndpointsTrafficPolicyCluster/only terminating endpoints
# exist: a LoadBalancer without node port, with ClientIP affinity. Upstream's
# service also sets healthCheckNodePort, which kube-proxy ignores with policy
# Cluster and config refuses there: omitted.
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
    address     = "10.0.1.2"
    node        = "test-node"
    ready       = false
    serving     = true
    terminating = true
  }

  endpoint {
    address     = "10.0.1.3"
    node        = "test-node"
    ready       = false
    serving     = true
    terminating = true
  }

  endpoint {
    address     = "10.0.1.4"
    node        = "another-host"
    ready       = false
    serving     = false
    terminating = true
  }

  endpoint {
    address     = "10.0.1.5"
    node        = "another-host"
    ready       = false
    serving     = true
    terminating = true
  }
}
