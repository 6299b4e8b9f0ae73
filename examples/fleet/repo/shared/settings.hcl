# Every box: the pod network behind the boxes. The node name is not set
# here: each box is its hostname (or SVCNAT_NODE in /etc/default/svcnat).
settings {
  cluster_cidrs = ["10.64.0.0/14"]
}
