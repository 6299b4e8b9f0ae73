# The host this configuration runs on. The demo (make demo) builds a throwaway
# lab whose node namespace plays "node1", with three backends on 10.64.1.2,
# 10.64.2.2 and 10.64.3.2 and a client on 192.0.2.2.
settings {
  node          = "node1"
  cluster_cidrs = ["10.64.0.0/14"]
}
