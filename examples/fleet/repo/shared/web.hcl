# The web tier, behind an external load balancer that sends traffic only to
# boxes whose health check node port says they have a local endpoint.
service "default/web" {
  type                    = "LoadBalancer"
  cluster_ips             = ["10.32.0.61"]
  load_balancer_ips       = ["203.0.113.10"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30500

  port {
    name      = "http"
    port      = 80
    node_port = 30080
  }

  endpoint {
    address = "10.64.1.2"
    node    = "edge-1"
  }
  endpoint {
    address = "10.64.2.2"
    node    = "edge-2"
  }
}
