package integration

// Real-kernel tests of what destroy gives back: every table as it was
// before svcnat's first apply, and nothing created on the way.

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// applyIPv4Config is one IPv4-only ClusterIP service.
const applyIPv4Config = `settings {
  node          = "node1"
  cluster_cidrs = ["10.64.0.0/14"]
}

service "default/web" {
  cluster_ips = ["10.32.0.61"]

  port {
    port = 80
  }

  endpoint {
    address = "10.64.1.2"
  }
}
`

// TestDestroyGivesBackTables: after apply and destroy, iptables-save of
// both families is what it was before the first apply. Tables svcnat's
// apply created go again on nft; on legacy the kernel's tables cannot be
// removed, so a table apply created stays, empty; no command creates a
// table apply did not write (ip6tables' on an IPv4-only configuration). A
// table someone else also writes to stays.
func TestDestroyGivesBackTables(t *testing.T) {
	applyForBackends(t, func(t *testing.T, b string) {
		for _, c := range []struct {
			name, config string
			seed         [][]string // IPv4 rules there before svcnat
		}{
			{"ipv4-only-with-filter", applyIPv4Config, [][]string{{"-t", "filter", "-A", "INPUT", "-s", "192.0.2.9", "-j", "DROP"}}},
			{"dual-stack-empty", applyBaseConfig, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				l := newApplyLab(t, b, c.config)
				for _, s := range c.seed {
					l.ipt(backend.IPv4, s...)
				}
				before := l.full()
				beforeTables := applyTables(before)
				l.must(0, "apply", "-auto-approve")
				l.must(0, "show")
				l.must(0, "destroy", "-auto-approve")
				after := l.full()
				if b == "nft" {
					l.same("iptables-save after destroy and before the first apply", before, after)
					return
				}
				// Legacy: only tables apply wrote and the kernel made may
				// be new, and they must be empty.
				afterTables := applyTables(after)
				for name, body := range afterTables {
					if was, ok := beforeTables[name]; ok {
						l.same(name+" after destroy and before the first apply", was, body)
						continue
					}
					fresh := strings.HasPrefix(name, "## IPv6") && c.config == applyIPv4Config
					if fresh || strings.Contains(body, "\n-A ") || strings.Contains(body, " -\n") || strings.Contains(body, " DROP\n") {
						t.Fatalf("%s destroy left the table %s, which was not there before, not empty (or made it for a family apply never wrote):\n%s", l.where(), name, body)
					}
				}
			})
		}
		t.Run("table-in-use", func(t *testing.T) {
			l := newApplyLab(t, b, applyIPv4Config)
			l.must(0, "apply", "-auto-approve")
			// Someone else starts using the nat table svcnat made.
			l.ipt(backend.IPv4, "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE")
			l.must(0, "destroy", "-auto-approve")
			after := l.full()
			if !strings.Contains(after, "-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE") {
				t.Fatalf("%s destroy removed a table another program writes to:\n%s", l.where(), after)
			}
			if strings.Contains(after, applyPrefix+"-") {
				t.Fatalf("%s destroy left svcnat's chains:\n%s", l.where(), after)
			}
		})
	})
}

// applyTables splits l.full() output into its tables, keyed "## IPv4
// *nat".
func applyTables(full string) map[string]string {
	out := map[string]string{}
	fam, table := "", ""
	for _, line := range strings.Split(full, "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			fam, table = line, ""
			continue
		case strings.HasPrefix(line, "*"):
			table = fam + " " + line
		}
		if table != "" {
			out[table] += line + "\n"
		}
	}
	return out
}
