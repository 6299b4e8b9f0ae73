# A UDP service with client-IP affinity: each client sticks to one backend.
service "kube-system/dns" {
  cluster_ips      = ["10.32.0.10"]
  session_affinity = "ClientIP"

  port {
    name     = "dns"
    protocol = "UDP"
    port     = 53
  }

  endpoint {
    address = "10.64.1.2"
    node    = "node1"
  }
  endpoint {
    address = "10.64.2.2"
    node    = "node1"
  }
}
