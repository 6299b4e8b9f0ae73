# Traffic policies Local, the terminating fallback, no endpoints, source
# ranges, and ports of every protocol, for node "test-node" (pod CIDR
# 10.0.0.0/8, node port addresses 192.168.0.2/32).
settings {
  node                = "test-node"
  cluster_cidrs       = ["10.0.0.0/8"]
  node_port_range     = "1-65535"
  node_port_addresses = ["192.168.0.2/32"]
}

# Internal policy Local with a local endpoint: the cluster IP goes to the
# local- chain, which holds only the local endpoint.
service "ns1/itp-local" {
  cluster_ips             = ["172.30.0.51"]
  internal_traffic_policy = "Local"

  port {
    name = "http"
    port = 80
  }

  endpoint {
    address = "10.180.0.1"
    node    = "test-node"
  }

  endpoint {
    address = "10.180.1.1"
    node    = "node2"
  }
}

# Internal policy Local without a local endpoint: the cluster IP is dropped.
service "ns2/itp-local-none" {
  cluster_ips             = ["172.30.0.52"]
  internal_traffic_policy = "Local"

  port {
    name = "http"
    port = 80
  }

  endpoint {
    address = "10.180.1.2"
    node    = "node2"
  }
}

# External policy Local with a local endpoint: external traffic goes to
# the local- chain, pods and the host short-circuit to the service- chain.
service "ns3/etp-local" {
  type                    = "LoadBalancer"
  cluster_ips             = ["172.30.0.53"]
  external_ips            = ["192.168.99.53"]
  load_balancer_ips       = ["1.2.3.53"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30053

  port {
    name      = "http"
    port      = 80
    node_port = 3053
  }

  endpoint {
    address = "10.180.0.3"
    node    = "test-node"
  }

  endpoint {
    address = "10.180.2.3"
    node    = "node2"
  }
}

# External policy Local whose only local endpoint is serving and
# terminating: Local falls back to it, Cluster keeps the ready one.
service "ns4/etp-local-terminating" {
  type                    = "NodePort"
  cluster_ips             = ["172.30.0.54"]
  external_traffic_policy = "Local"

  port {
    name      = "http"
    port      = 80
    node_port = 3054
  }

  endpoint {
    address     = "10.180.0.4"
    node        = "test-node"
    ready       = false
    serving     = true
    terminating = true
  }

  endpoint {
    address = "10.180.2.4"
    node    = "node2"
  }
}

# Load-balancer IPs with source ranges, one holding the node's address, and
# no endpoints: the firewall still holds them to the ranges (and lets the
# load-balancer IPs in), then every address is rejected.
service "ns5/lb-ranges" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.55"]
  load_balancer_ips           = ["1.2.3.55", "5.6.7.55"]
  load_balancer_source_ranges = ["192.168.0.0/24", "203.0.113.0/25"]

  port {
    name      = "http"
    port      = 80
    node_port = 3055
  }
}

# One unnamed port per protocol needs a service each; here UDP and SCTP
# ports with target ports, and an endpoint overriding one.
service "ns6/dns" {
  cluster_ips = ["172.30.0.56"]

  port {
    name        = "dns-sctp"
    protocol    = "SCTP"
    port        = 53
    target_port = 5353
  }

  port {
    name     = "dns-udp"
    protocol = "UDP"
    port     = 53
  }

  endpoint {
    address = "10.180.0.6"
    node    = "test-node"
  }

  endpoint {
    address = "10.180.3.6"
    node    = "node3"
    ports   = { "dns-udp" = 1053 }
  }
}

# An unnamed port.
service "unnamed" {
  cluster_ips = ["172.30.0.57"]

  port {
    port = 8080
  }

  endpoint {
    address = "10.180.0.7"
  }
}
