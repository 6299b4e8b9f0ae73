service "kube-system/dns" {
  cluster_ips = ["10.32.0.10"]

  port {
    name     = "dns"
    protocol = "UDP"
    port     = 53
  }

  endpoint {
    address = "10.64.1.3"
    node    = "edge-1"
  }
  endpoint {
    address = "10.64.2.3"
    node    = "edge-2"
  }
}
