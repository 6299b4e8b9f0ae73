# TestOverallNFTablesRules' six services (kubernetes
# pkg/proxy/nftables/proxier_test.go), with NewFakeProxier's settings: pod
# CIDR 10.0.0.0/8, node "test-node", node port addresses 192.168.0.2/32 and
# 2001:db8::1/128 (the service CIDR 172.30.0.0/16 is a render option: the
# configuration has no place for it). Two upstream objects are not valid
# Services, so the HCL writes what kube-proxy acts on, which renders the
# same objects (as the iptables renderer's overall.hcl does):
#   - ns4/svc4 is type NodePort without a node port (upstream's fake skips
#     node port allocation): written as a ClusterIP service with its
#     external IP, the only way traffic reaches it.
#   - ns5/svc5 sets healthCheckNodePort with external traffic policy
#     Cluster, where kube-proxy ignores it: omitted.
settings {
  node                = "test-node"
  cluster_cidrs       = ["10.0.0.0/8"]
  node_port_range     = "1-65535"
  node_port_addresses = ["192.168.0.2/32", "2001:db8::1/128"]
}

service "ns1/svc1" {
  cluster_ips = ["172.30.0.41"]

  port {
    name = "p80"
    port = 80
  }

  endpoint {
    address = "10.180.0.1"
  }
}

# Local traffic policy; the only endpoint has no node, so it is not local.
service "ns2/svc2" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.42"]
  external_ips            = ["192.168.99.22"]
  load_balancer_ips       = ["1.2.3.4"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30000

  port {
    name      = "p80"
    port      = 80
    node_port = 3001
  }

  endpoint {
    address = "10.180.0.2"
  }
}

service "ns3/svc3" {
  type        = "NodePort"
  cluster_ips = ["172.30.0.43"]

  port {
    name      = "p80"
    port      = 80
    node_port = 3003
  }

  endpoint {
    address = "10.180.0.3"
  }
}

service "ns4/svc4" {
  cluster_ips  = ["172.30.0.44"]
  external_ips = ["192.168.99.33"]

  port {
    name = "p80"
    port = 80
  }

  endpoint {
    address = "10.180.0.4"
  }

  endpoint {
    address = "10.180.0.5"
    node    = "test-node"
  }
}

# Cluster traffic policy, a source range and ClientIP affinity.
service "ns5/svc5" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.45"]
  load_balancer_ips           = ["5.6.7.8"]
  load_balancer_source_ranges = ["203.0.113.0/25"]
  session_affinity            = "ClientIP"
  session_affinity_timeout    = 10800

  port {
    name      = "p80"
    port      = 80
    node_port = 3002
  }

  endpoint {
    address = "10.180.0.3"
  }
}

# No endpoints.
service "ns6/svc6" {
  cluster_ips = ["172.30.0.46"]

  port {
    name = "p80"
    port = 80
  }
}
