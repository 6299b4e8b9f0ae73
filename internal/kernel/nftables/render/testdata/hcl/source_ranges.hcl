# Load-balancer source ranges that overlap and touch, and load-balancer IPs
# inside them: nft merges the firewall's set as it loads it, so svcnat
# writes the merged set, which reads back as written. Node "test-node",
# whose address 192.168.0.2 is in a range (the load-balancer IPs are let
# in too).
settings {
  node          = "test-node"
  cluster_cidrs = ["10.0.0.0/8", "fd00:10::/64"]
}

# 10.1.0.0/16 inside 10.0.0.0/8; two halves of 198.51.100.0/24; two
# addresses side by side (a range); a load-balancer IP inside
# 192.168.0.0/16, the other alone.
service "ns1/overlapping" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.71", "fd00:10:96::71"]
  load_balancer_ips           = ["192.168.5.5", "1.2.3.71", "2001:db8::99"]
  load_balancer_source_ranges = ["10.0.0.0/8", "10.1.0.0/16", "198.51.100.0/25", "198.51.100.128/25", "203.0.113.7/32", "203.0.113.8/32", "192.168.0.0/16", "2001:db8::/32", "2001:db8:1::/48"]

  port {
    name      = "http"
    port      = 80
    node_port = 30071
  }

  endpoint {
    address = "10.180.0.71"
    node    = "test-node"
  }
  endpoint {
    address = "fd00:10::71"
    node    = "test-node"
  }
}
