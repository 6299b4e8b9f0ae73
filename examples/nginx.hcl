# nginx on three backends: reachable on its cluster IP from anywhere, and
# from outside on every node address at node port 30080.
service "default/nginx" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.61"]

  port {
    name        = "http"
    protocol    = "TCP"
    port        = 80
    target_port = 80
    node_port   = 30080
  }

  endpoint {
    address = "10.64.1.2"
    node    = "node1"
  }
  endpoint {
    address = "10.64.2.2"
    node    = "node1"
  }
  endpoint {
    address = "10.64.3.2"
    node    = "node2"
  }
}
