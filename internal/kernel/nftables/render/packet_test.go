package render

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestKernelPackets loads the table of five cluster-IP services into the
// node of a netlab (a client and three backend namespaces routed through
// it) and sends real connections from the client: to the service with an
// endpoint the backend answers, to the one with three every backend
// answers some, to the one with three under ClientIP affinity one
// backend answers all and the affinity set holds the client, to the one
// without endpoints the connection is refused (no-endpoint-services'
// reject-chain). Before the load the cluster IP leads nowhere, so the
// answer is the table's doing. The services with one and three plain
// endpoints are chainless (dispatch-tcp-1 and dispatch-tcp-3 pick from
// vip-endpoints-tcp); the one with three and an external IP keeps its
// service chain and range of endpoints-tcp, and spreads the same.
func TestKernelPackets(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian's nftables; make deps installs it)")
	}
	lab := netlab.New(t, netlab.Options{Backends: 3, HTTPPorts: []int{80}, UDPPorts: []int{}})
	be := lab.Backends[0]
	endpoints := ""
	for _, b := range lab.Backends {
		endpoints += "\n  endpoint {\n    address = \"" + b.IP4.String() + "\"\n  }\n"
	}
	cfg, diags := config.Parse(map[string][]byte{"lab.hcl": []byte(`
service "ns/spread" {
  cluster_ips = ["172.30.0.12"]

  port {
    port = 80
  }
` + endpoints + `}

service "ns/ranged" {
  cluster_ips  = ["172.30.0.14"]
  external_ips = ["192.0.2.14"]

  port {
    port = 80
  }
` + endpoints + `}

service "ns/sticky" {
  cluster_ips      = ["172.30.0.13"]
  session_affinity = "ClientIP"

  port {
    port = 80
  }
` + endpoints + `}

service "ns/web" {
  cluster_ips = ["172.30.0.10"]

  port {
    port = 80
  }

  endpoint {
    address = "` + be.IP4.String() + `"
  }
}

service "ns/empty" {
  cluster_ips = ["172.30.0.11"]

  port {
    port = 80
  }
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	url := "http://" + netlab.HostPort(netip.MustParseAddr("172.30.0.10"), 80) + "/"
	quick := lab.Client.WithTimeout(300 * time.Millisecond)
	if reply, err := quick.HTTPGet(url); err == nil {
		t.Fatalf("the cluster IP answers before the table is loaded: %q", reply)
	}

	fake := knftables.NewFake(knftables.IPv4Family, DefaultTable)
	tx := fake.NewTransaction()
	if _, err := RenderConfig(tx, cfg, backend.IPv4, Options{RenderOptions: backend.RenderOptions{Node: "node"}}); err != nil {
		t.Fatal(err)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	node := testns.NS{Name: lab.Node.Name}
	if _, err := node.Exec(tx.String(), "nft", "-f", "-"); err != nil {
		t.Fatalf("loading the table: %v\n%s", err, numbered(tx.String()))
	}

	listed := node.MustExec(t, "", "nft", "list", "table", "ip", DefaultTable)
	for _, want := range []string{"chain dispatch-tcp-1 {", "chain dispatch-tcp-3 {", `172.30.0.12 . tcp . 80 comment "ns/spread" : goto dispatch-tcp-3`,
		"dnat ip to ip daddr . tcp dport . numgen random mod 3 map @vip-endpoints-tcp", "172.30.0.12 . 80 . 2 : "} {
		if !strings.Contains(listed, want) {
			t.Errorf("the table has no %q:\n%s", want, listed)
		}
	}
	if strings.Contains(listed, "-ns/spread/") || strings.Contains(listed, "-ns/web/") || !strings.Contains(listed, "chain service-") {
		t.Errorf("the chainless services have service chains, or the others none:\n%s", listed)
	}

	reply, err := lab.Client.HTTPGet(url)
	if err != nil {
		t.Fatalf("GET %s through the table: %v\n%s", url, err, node.MustExec(t, "", "nft", "list", "table", "ip", DefaultTable))
	}
	name, remote := netlab.ParseReply(reply)
	if name != be.Label {
		t.Errorf("GET %s answered by %q (seen from %s), want %s", url, name, remote, be.Label)
	}
	t.Logf("%s answered, seeing the client as %s", name, remote)

	// Three endpoints in a range of endpoints-tcp: numgen spreads the
	// connections over all three (60 connections miss one with
	// probability 3 × (2/3)^60, about 10^-10).
	answered := func(vip string, n int) map[string]int {
		out := map[string]int{}
		for range n {
			reply, err := lab.Client.HTTPGet("http://" + netlab.HostPort(netip.MustParseAddr(vip), 80) + "/")
			if err != nil {
				t.Fatalf("GET %s: %v", vip, err)
			}
			name, _ := netlab.ParseReply(reply)
			out[name]++
		}
		return out
	}
	if got := answered("172.30.0.12", 60); len(got) != len(lab.Backends) {
		t.Errorf("60 connections to ns/spread reached %v, want all %d backends", got, len(lab.Backends))
	}
	if got := answered("172.30.0.14", 60); len(got) != len(lab.Backends) {
		t.Errorf("60 connections to ns/ranged reached %v, want all %d backends", got, len(lab.Backends))
	}
	// ClientIP affinity: the first connection picks an endpoint, the
	// affinity set keeps the client with it for the rest.
	if got := answered("172.30.0.13", 20); len(got) != 1 {
		t.Errorf("20 connections to ns/sticky from one client reached %v, want one backend", got)
	}
	if set := node.MustExec(t, "", "nft", "list", "set", "ip", DefaultTable, "affinity"); !strings.Contains(set, lab.Client.IP4.String()+" timeout 3h") {
		t.Errorf("the affinity set does not hold the client:\n%s", set)
	}

	c, err := lab.Client.DialTCP(netlab.HostPort(netip.MustParseAddr("172.30.0.11"), 80))
	if err == nil {
		c.Close()
	}
	if !netlab.IsRefused(err) {
		t.Errorf("connecting to the service without endpoints: %v, want connection refused", err)
	}
}
