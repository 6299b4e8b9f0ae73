# Only edge-1 runs the metrics gateway: a file of a new name adds a service
# to this box alone.
service "monitoring/gateway" {
  cluster_ips = ["10.32.0.90"]

  port {
    port        = 9091
    target_port = 9091
  }

  endpoint {
    address = "10.64.1.9"
    node    = "edge-1"
  }
}
