# TestTerminatingEndpointsTrafficPolicyLocal/terminating endpoints on remote
# node: a LoadBalancer without node port, with ClientIP affinity and a health
# check node port.
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
  external_traffic_policy  = "Local"
  health_check_node_port   = 30000
  session_affinity         = "ClientIP"
  session_affinity_timeout = 10800

  port {
    port = 80
  }

  endpoint {
    address     = "10.0.1.5"
    node        = "host-1"
    ready       = false
    serving     = true
    terminating = true
  }
}
