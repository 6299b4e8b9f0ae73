//go:build linux

package netlab

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/testns"
)

// TestLabIPv4 checks the harness on its own, without svcnat: direct
// reachability, source preservation, a hand-written DNAT and its conntrack
// entry, then that teardown leaves nothing behind.
func TestLabIPv4(t *testing.T) {
	var names []string
	t.Run("lab", func(t *testing.T) {
		l := New(t, Options{Backends: 2, ExtraClients: 1})
		for _, ns := range l.Namespaces() {
			names = append(names, ns.Name)
		}

		body, err := l.Client.HTTPGet("http://10.64.1.2/")
		if err != nil {
			t.Fatal(err)
		}
		if name, remote := ParseReply(body); name != "backend-0" || !strings.HasPrefix(remote, "192.0.2.2:") {
			t.Fatalf("direct GET: got %q, want backend-0 seeing 192.0.2.2", body)
		}

		reply, err := l.Client.UDPRoundTrip(HostPort(l.Backends[1].IP4, 5353), "ping")
		if err != nil {
			t.Fatal(err)
		}
		if name, remote := ParseReply(reply); name != "backend-1" || !strings.HasPrefix(remote, "192.0.2.2:") {
			t.Fatalf("UDP: got %q, want backend-1 seeing 192.0.2.2", reply)
		}

		body, err = l.Node.HTTPGet("http://10.64.2.2:8080/")
		if err != nil {
			t.Fatal(err)
		}
		if name, remote := ParseReply(body); name != "backend-1" || !strings.HasPrefix(remote, "10.64.2.1:") {
			t.Fatalf("GET from node: got %q", body)
		}

		body, err = l.Clients[1].HTTPGet("http://10.64.1.2/")
		if err != nil {
			t.Fatal(err)
		}
		if _, remote := ParseReply(body); !strings.HasPrefix(remote, "192.0.3.2:") {
			t.Fatalf("GET from extra client: got %q", body)
		}

		// Nothing answers for an unknown VIP: the node hands it to the sink.
		if _, err := l.Client.WithTimeout(300 * time.Millisecond).HTTPGet("http://10.32.0.10/"); !IsTimeout(err) {
			t.Fatalf("VIP before DNAT: got %v, want a timeout", err)
		}

		l.Node.Run(t, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", "10.32.0.10/32",
			"-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "10.64.1.2:80")
		body, err = l.Client.HTTPGet("http://10.32.0.10/")
		if err != nil {
			t.Fatal(err)
		}
		if name, remote := ParseReply(body); name != "backend-0" || !strings.HasPrefix(remote, "192.0.2.2:") {
			t.Fatalf("via DNAT: got %q", body)
		}
		ct := l.Conntrack(t, "-L", "-p", "tcp", "--orig-dst", "10.32.0.10")
		if !strings.Contains(ct, "dst=10.32.0.10") || !strings.Contains(ct, "src=10.64.1.2") {
			t.Fatalf("conntrack entry missing:\n%s", ct)
		}
		if save := l.IPTablesSave(t, ""); !strings.Contains(save, "--to-destination 10.64.1.2:80") {
			t.Fatalf("iptables-save lacks the rule:\n%s", save)
		}

		// REJECT must surface as a refusal, which depends on the node not
		// wasting its ICMP budget on redirects.
		l.Node.Run(t, "iptables", "-A", "FORWARD", "-d", "10.64.2.2", "-p", "udp", "-j", "REJECT")
		if _, err := l.Client.UDPRoundTrip("10.64.2.2:53", "x"); !IsRefused(err) {
			t.Fatalf("UDP to rejected backend: got %v, want refused", err)
		}

		// A reply must leave from the address the request was sent to even
		// for a secondary address of a wildcard-bound server.
		l.Node.AddAddr(t, "lo", "203.0.113.10/32")
		l.Node.ServeUDP(t, "node", ":5353")
		reply, err = l.Client.UDPRoundTrip("203.0.113.10:5353", "x")
		if err != nil || !strings.HasPrefix(reply, "node 192.0.2.2:") {
			t.Fatalf("UDP to node secondary address: %q, %v", reply, err)
		}

		if got := strings.TrimSpace(l.Node.Run(t, "sysctl", "-n", "net.ipv4.conf.all.send_redirects")); got != "0" {
			t.Fatalf("node send_redirects = %s", got)
		}
		if got := strings.TrimSpace(l.Uplink.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); got != "0" {
			t.Fatalf("uplink ip_forward = %s", got)
		}

		// The veth pairs are created inside the namespaces; none may show
		// up in the host's.
		host, err := run("host", "ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, link := range []string{"cli0", "cli1", "be0", "be1", "up0"} {
			if strings.Contains(host, " "+link+"@") || strings.Contains(host, " "+link+":") {
				t.Fatalf("link %s leaked into the host namespace:\n%s", link, host)
			}
		}
	})
	assertGone(t, names)
}

func TestLabIPv6(t *testing.T) {
	var names []string
	t.Run("lab", func(t *testing.T) {
		l := New(t, Options{Backends: 1, IPv6: true, HTTPPorts: []int{80}, UDPPorts: []int{53}})
		for _, ns := range l.Namespaces() {
			names = append(names, ns.Name)
		}
		body, err := l.Client.HTTPGet("http://[fd00:64:1::2]/")
		if err != nil {
			t.Fatal(err)
		}
		if name, remote := ParseReply(body); name != "backend-0" || !strings.HasPrefix(remote, "[fd00:2::2]:") {
			t.Fatalf("direct GET: got %q", body)
		}
		reply, err := l.Client.UDPRoundTrip("[fd00:64:1::2]:53", "x")
		if err != nil || !strings.HasPrefix(reply, "backend-0 [fd00:2::2]:") {
			t.Fatalf("UDP: %q, %v", reply, err)
		}

		l.Node.Run(t, "ip6tables", "-t", "nat", "-A", "PREROUTING", "-d", "fd00:32::10/128",
			"-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "[fd00:64:1::2]:80")
		body, err = l.Client.HTTPGet("http://[fd00:32::10]/")
		if err != nil {
			t.Fatal(err)
		}
		if name, _ := ParseReply(body); name != "backend-0" {
			t.Fatalf("via DNAT: got %q", body)
		}
		ct := l.Conntrack(t, "-L", "-f", "ipv6", "-p", "tcp", "--orig-dst", "fd00:32::10")
		if !strings.Contains(ct, "src=fd00:64:1::2") {
			t.Fatalf("conntrack entry missing:\n%s", ct)
		}

		// IPv4 still works in a dual-stack lab.
		if _, err := l.Client.HTTPGet("http://10.64.1.2/"); err != nil {
			t.Fatal(err)
		}
	})
	assertGone(t, names)
}

func TestSweepStale(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root and network namespaces")
	}
	// 1<<30 is above the kernel's pid_max, so no process can own it.
	name := fmt.Sprintf("%s%d-1-sweeptest", Prefix, 1<<30)
	live := fmt.Sprintf("%s%d-1-sweeptest", Prefix, os.Getpid())
	t.Cleanup(func() { removeNS(name); removeNS(live) })
	for _, n := range []string{name, live} {
		if _, err := run("test", "ip", "netns", "add", n); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := testns.SweepStale(Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(removed, " "), name) {
		t.Fatalf("testns.SweepStale removed %v, want %s", removed, name)
	}
	if _, err := os.Stat(nsPath(name)); err == nil {
		t.Fatalf("%s still exists", name)
	}
	if _, err := os.Stat(nsPath(live)); err != nil {
		t.Fatalf("namespace of a live pid was swept: %v", err)
	}
}

func assertGone(t *testing.T, names []string) {
	t.Helper()
	if len(names) == 0 {
		t.SkipNow() // New skipped the subtest (or failed, which stays reported)
	}
	list, err := run("host", "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(list, n) {
			t.Errorf("namespace %s survived teardown:\n%s", n, list)
		}
	}
}
