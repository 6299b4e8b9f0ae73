package trace

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestKernelAgrees loads a rendered table into the node of a netlab (a
// client and two backend namespaces routed through it; nft runs only in
// the lab's namespaces) and sends real connections from the client: for
// each, what trace predicts from the same table — the backends the
// connection may reach, or REJECT (refused), or DROP (no answer) — must
// be what happens.
func TestKernelAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-kernel test")
	}
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian's nftables; make deps installs it)")
	}
	if out, err := exec.Command("nft", "--version").Output(); err != nil || !strings.Contains(string(out), " v1.0.") {
		t.Skipf("needs nft 1.0.x, whose listing the model holds: %v %s", err, out)
	}
	lab := netlab.New(t, netlab.Options{Backends: 2, HTTPPorts: []int{80}, UDPPorts: []int{}})
	b0, b1 := lab.Backends[0], lab.Backends[1]
	blocked := netip.MustParsePrefix("203.0.113.0/24")
	if blocked.Contains(lab.Client.IP4) {
		t.Fatalf("the client %s is inside the source range meant to block it", lab.Client.IP4)
	}
	cfg, diags := config.Parse(map[string][]byte{"lab.hcl": []byte(`
settings {
  node = "node"
}

service "ns/web" {
  type        = "NodePort"
  cluster_ips = ["172.30.0.10"]
  port {
    port      = 80
    node_port = 30080
  }
  endpoint {
    address = "` + b0.IP4.String() + `"
  }
  endpoint {
    address = "` + b1.IP4.String() + `"
  }
}

service "ns/empty" {
  cluster_ips = ["172.30.0.11"]
  port {
    port = 80
  }
}

service "ns/lb" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["172.30.0.12"]
  load_balancer_ips           = ["198.18.0.12"]
  load_balancer_source_ranges = ["` + blocked.String() + `"]
  port {
    port      = 80
    node_port = 30081
  }
  endpoint {
    address = "` + b1.IP4.String() + `"
  }
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for _, p := range append([]*netlab.Peer{lab.Client, lab.Uplink}, lab.Backends...) {
		local = append(local, p.NodeIP4)
	}
	r, err := render.Renderer{}.Render(cfg, backend.RenderOptions{Node: "node", LocalAddresses: local})
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	if err := r.Rulesets[backend.IPv4].WriteText(&script); err != nil {
		t.Fatal(err)
	}
	node := testns.NS{Name: lab.Node.Name}
	if out, err := node.Exec(script.String(), "nft", "-f", "-"); err != nil {
		t.Fatalf("loading the table: %v\n%s\n%s", err, out, script.String())
	}
	h := Host{Rules: r.Rulesets, Local: local, Table: backend.NFTTable(cfg.Settings.ChainPrefix)}
	label := map[netip.Addr]string{b0.IP4: b0.Label, b1.IP4: b1.Label}

	for _, c := range []struct {
		name string
		dst  netip.Addr
		port int
	}{
		{"cluster IP, two endpoints", netip.MustParseAddr("172.30.0.10"), 80},
		{"node port, two endpoints", lab.Client.NodeIP4, 30080},
		{"cluster IP without endpoints", netip.MustParseAddr("172.30.0.11"), 80},
		{"cluster IP, a port it does not have", netip.MustParseAddr("172.30.0.10"), 81},
		{"load-balancer IP, client outside the source range", netip.MustParseAddr("198.18.0.12"), 80},
		{"the same service's node port, which ranges do not hold", lab.Client.NodeIP4, 30081},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := h.Trace(backend.Packet{Src: lab.Client.IP4, Dst: c.dst, Proto: "tcp", DPort: c.port, Origin: backend.OriginExternal})
			if err != nil {
				t.Fatal(err)
			}
			want, masq, problem := reached(res)
			if problem != "" {
				t.Fatalf("%s\n%s", problem, text(res))
			}
			var may []string // the backends trace says the connection may reach
			for _, p := range res.Paths {
				if p.Verdict == backend.DNAT && p.Condition == "" {
					may = append(may, label[p.Dst.Addr()])
				}
			}
			hp := netlab.HostPort(c.dst, c.port)
			reply, err := lab.Client.WithTimeout(time.Second).HTTPGet("http://" + hp + "/")
			switch {
			case err == nil:
				name, remote := netlab.ParseReply(reply)
				if !slices.Contains(may, name) {
					t.Errorf("%s answered by %s, trace says %q:\n%s", hp, name, want, text(res))
				}
				// Masqueraded, the backend sees the node's address, not the client's.
				if sawClient := strings.HasPrefix(remote, lab.Client.IP4.String()+":"); sawClient == masq {
					t.Errorf("%s: the backend saw %s; trace says masquerade %v", hp, remote, masq)
				}
			case netlab.IsRefused(err):
				if want != "REJECT" {
					t.Errorf("%s refused, trace says %q:\n%s", hp, want, text(res))
				}
			case netlab.IsTimeout(err):
				if want != "DROP" {
					t.Errorf("%s timed out, trace says %q:\n%s", hp, want, text(res))
				}
			default:
				t.Errorf("%s: %v; trace says %q", hp, err, want)
			}
			t.Logf("%s: trace %q, kernel: %v", hp, want, err)
		})
	}
}
