# The longest names config admits (63 characters for the namespace, the
# name and the port name) with a full-length IPv6 endpoint and ClientIP
# affinity: the endpoint chain's name is cut to kube-proxy's 240
# characters with "...", and element comments to nft's 128 bytes.
settings {
  node            = "test-node"
  node_port_range = "1-65535"
}

service "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnns/ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssv" {
  type             = "NodePort"
  cluster_ips      = ["172.30.0.71", "fd00:10:96::71"]
  session_affinity = "ClientIP"

  port {
    name      = "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppn"
    port      = 80
    node_port = 3071
  }

  endpoint {
    address = "fd00:1111:2222:3333:4444:5555:6666:7777"
  }
}
