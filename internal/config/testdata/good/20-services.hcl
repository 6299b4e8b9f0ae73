// Every service attribute, dual-stack.
service "default/nginx" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["10.32.0.61", "fd00:32::61"]
  external_ips                = ["192.168.1.50"]
  load_balancer_ips           = ["203.0.113.7", "2001:db8::7"]
  load_balancer_source_ranges = ["198.51.100.0/24", "2001:db8:1::/48"]
  external_traffic_policy     = "Local"
  internal_traffic_policy     = "Local"
  health_check_node_port      = 30500
  session_affinity            = "ClientIP"
  session_affinity_timeout    = 600

  port {
    name        = "https"
    protocol    = "TCP"
    port        = 443
    target_port = 8443
    node_port   = 30443
  }

  port {
    name      = "http"
    port      = 80
    node_port = 30080
  }

  port {
    name     = "quic"
    protocol = "UDP"
    port     = 443
  }

  endpoint {
    address     = "10.64.2.4"
    node        = "worker02"
    ready       = true
    serving     = true
    terminating = false
    ports       = { http = 8080, "quic" = 8443 }
  }

  endpoint {
    address     = "fd00:10:64::5"
    node        = "worker03.example"
    ready       = false
    serving     = true
    terminating = true
  }

  endpoint {
    address = "10.64.3.9"
  }

  health_check {
    protocol     = "http"
    port         = 0
    service_port = "https"
    path         = "/healthz"
    interval     = "5s"
    timeout      = "2s"
    rise         = 3
    fall         = 2
  }
}

/* A NodePort service with SCTP. */
service "kube-system/sctp-echo" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.70"]

  port {
    protocol  = "SCTP"
    port      = 7
    node_port = 30007
  }
}
