//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/testns"
)

// Prefix starts the name of every namespace this package creates. The full
// name is Prefix + "<pid>-<lab>-<role>", which lets testns.SweepStale tell leftovers
// of dead test processes from namespaces that are still in use.
const Prefix = "sn-"

var (
	labCounter atomic.Int64
	sweepOnce  sync.Once
)

// Options shape a Lab.
type Options struct {
	// Backends is the number of backend namespaces.
	Backends int
	// ExtraClients adds client namespaces beyond the first, each on its own
	// link, so a test can have an "allowed" and a "denied" source.
	ExtraClients int
	// IPv6 adds the IPv6 half of the address plan.
	IPv6 bool
	// HTTPPorts and UDPPorts are the ports every backend serves. nil means
	// the defaults (80, 8080 and 53, 5353); an empty non-nil slice means none.
	HTTPPorts []int
	UDPPorts  []int
}

// Peer is a namespace attached to the node by one veth pair.
type Peer struct {
	NS
	// Label names the peer in server replies: "client", "client-1",
	// "backend-0", "uplink".
	Label string
	// Link is the peer's interface ("eth0"); NodeLink is the node's end.
	Link, NodeLink string
	// IP4/IP6 are the peer's addresses, NodeIP4/NodeIP6 the node's
	// addresses on the same link (the peer's gateway). IPv6 ones are
	// invalid unless Options.IPv6.
	IP4, IP6, NodeIP4, NodeIP6 netip.Addr
	// Prefix4/Prefix6 are the link's subnets.
	Prefix4, Prefix6 netip.Prefix
}

// Lab is one test topology; see the package documentation for the layout.
type Lab struct {
	// Node is where the code under test installs its rules.
	Node NS
	// Client is Clients[0].
	Client *Peer
	// Clients are all client peers, the first one included.
	Clients  []*Peer
	Backends []*Peer
	// Uplink carries the node's default route and answers nothing.
	Uplink *Peer

	opts Options
	t    testing.TB
	mu   sync.Mutex
	nss  []NS // creation order, for teardown
}

// New builds a lab and registers its teardown with t.Cleanup. It skips the
// test when not running as root on Linux or when `ip` is missing.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("netlab: needs Linux")
	}
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("netlab: " + testns.Available())
	}
	if _, err := lookTool("ip"); err != nil {
		t.Skipf("netlab: iproute2 missing: %v", err)
	}
	sweepOnce.Do(func() {
		if removed, err := testns.SweepStale(Prefix); err != nil {
			t.Logf("netlab: sweeping stale namespaces: %v", err)
		} else if len(removed) > 0 {
			t.Logf("netlab: removed stale namespaces of dead test processes: %v", removed)
		}
	})
	if opts.HTTPPorts == nil {
		opts.HTTPPorts = []int{80, 8080}
	}
	if opts.UDPPorts == nil {
		opts.UDPPorts = []int{53, 5353}
	}
	if opts.Backends < 0 || opts.Backends > 250 || opts.ExtraClients < 0 || opts.ExtraClients > 250 {
		t.Fatalf("netlab: Backends and ExtraClients must be within 0..250, got %d and %d", opts.Backends, opts.ExtraClients)
	}

	l := &Lab{opts: opts, t: t}
	// Registered before anything exists so a failure half-way through
	// still removes whatever was created.
	t.Cleanup(l.destroy)

	id := labCounter.Add(1)
	base := fmt.Sprintf("%s%d-%d-", Prefix, os.Getpid(), id)

	l.Node = l.newNS(t, base+"node", true)
	for k := 0; k <= opts.ExtraClients; k++ {
		label, role := "client", "cli0"
		if k > 0 {
			label, role = fmt.Sprintf("client-%d", k), fmt.Sprintf("cli%d", k)
		}
		p := l.attach(t, base+role, label, role, true,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, byte(2 + k), 0}), 24),
			netip.MustParsePrefix(fmt.Sprintf("fd00:%x::/64", 2+k)))
		l.Clients = append(l.Clients, p)
	}
	l.Client = l.Clients[0]
	for i := 0; i < opts.Backends; i++ {
		role := fmt.Sprintf("be%d", i)
		p := l.attach(t, base+role, fmt.Sprintf("backend-%d", i), role, true,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, byte(i + 1), 0}), 24),
			netip.MustParsePrefix(fmt.Sprintf("fd00:64:%x::/64", i+1)))
		l.Backends = append(l.Backends, p)
	}
	// The uplink must stay a sink: without forwarding and without a route
	// back it drops whatever the node sends it, so "no rule matched" shows
	// up as a timeout instead of a stray answer or an ICMP redirect.
	l.Uplink = l.attach(t, base+"up", "uplink", "up0", false,
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00:ff::/64"))
	l.Node.AddRoute(t, "default", l.Uplink.IP4.String())
	if opts.IPv6 {
		l.Node.AddRoute(t, "default", l.Uplink.IP6.String())
	}
	l.waitReady(t)

	for _, b := range l.Backends {
		for _, port := range opts.HTTPPorts {
			b.ServeHTTP(t, b.Label, ":"+strconv.Itoa(port))
		}
		for _, port := range opts.UDPPorts {
			b.ServeUDP(t, b.Label, ":"+strconv.Itoa(port))
		}
	}
	return l
}

// newNS creates a namespace with sysctls pinned: IPv4 defaults are
// otherwise inherited from the host, which would make behaviour
// host-dependent, and they must be set before links exist because new
// interfaces copy the "default" values.
func (l *Lab) newNS(t testing.TB, name string, node bool) NS {
	t.Helper()
	ns := NS{Name: name}
	l.mu.Lock()
	// Recorded before creation: teardown tolerates names that never made it.
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	if _, err := run("netns "+name, "ip", "netns", "add", name); err != nil {
		if strings.Contains(err.Error(), "Operation not permitted") || strings.Contains(err.Error(), "Permission denied") {
			t.Skipf("netlab: cannot create network namespaces here: %v", err)
		}
		t.Fatal(err)
	}
	ns.IP(t, "link", "set", "lo", "up")
	sysctls := [][2]string{
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv6.conf.all.disable_ipv6", "0"},
		{"net.ipv6.conf.default.disable_ipv6", "0"},
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
	}
	forward := "0"
	if node {
		forward = "1"
	}
	// ip_forward is inherited from the host too; peers must not route.
	sysctls = append(sysctls,
		[2]string{"net.ipv4.ip_forward", forward},
		[2]string{"net.ipv6.conf.all.forwarding", forward},
	)
	if node {
		sysctls = append(sysctls,
			// Redirects would be rate-limited together with REJECT's ICMP
			// errors and make negative tests flaky.
			[2]string{"net.ipv4.conf.all.send_redirects", "0"},
			[2]string{"net.ipv4.conf.default.send_redirects", "0"},
		)
	}
	for _, kv := range sysctls {
		ns.Sysctl(t, kv[0], kv[1])
	}
	return ns
}

// attach creates a peer namespace and its veth pair. The pair is created
// with both ends already inside their namespaces, so nothing ever appears
// in the host's namespace and interface names only need to be unique per
// namespace.
func (l *Lab) attach(t testing.TB, name, label, nodeLink string, gateway bool, p4, p6 netip.Prefix) *Peer {
	t.Helper()
	p := &Peer{
		Label: label, Link: "eth0", NodeLink: nodeLink,
		Prefix4: p4,
		IP4:     p4.Addr().Next().Next(),
		NodeIP4: p4.Addr().Next(),
	}
	if l.opts.IPv6 {
		p.Prefix6 = p6
		p.IP6 = p6.Addr().Next().Next()
		p.NodeIP6 = p6.Addr().Next()
	}
	p.NS = l.newNS(t, name, false)
	l.Node.IP(t, "link", "add", nodeLink, "type", "veth", "peer", "name", p.Link, "netns", name)
	l.Node.AddAddr(t, nodeLink, netip.PrefixFrom(p.NodeIP4, p4.Bits()).String())
	p.AddAddr(t, p.Link, netip.PrefixFrom(p.IP4, p4.Bits()).String())
	if l.opts.IPv6 {
		l.Node.AddAddr(t, nodeLink, netip.PrefixFrom(p.NodeIP6, p6.Bits()).String())
		p.AddAddr(t, p.Link, netip.PrefixFrom(p.IP6, p6.Bits()).String())
	}
	l.Node.IP(t, "link", "set", nodeLink, "up")
	p.IP(t, "link", "set", p.Link, "up")
	if gateway {
		p.AddRoute(t, "default", p.NodeIP4.String())
		if l.opts.IPv6 {
			p.AddRoute(t, "default", p.NodeIP6.String())
		}
	}
	return p
}

// waitReady polls until every veth has carrier and no address is still
// tentative, so the first packet a test sends is not lost to link setup.
func (l *Lab) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range l.Namespaces() {
		for {
			err := ns.ready()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("netlab: namespace not ready: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (ns NS) ready() error {
	links, err := ns.ip("-o", "link", "show")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(links), "\n") {
		if strings.Contains(line, "LOOPBACK") {
			continue
		}
		if !strings.Contains(line, "LOWER_UP") {
			return fmt.Errorf("netns %s: link without carrier: %s", ns.Name, line)
		}
	}
	tentative, err := ns.ip("-o", "addr", "show", "tentative")
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(tentative); s != "" {
		return fmt.Errorf("netns %s: tentative addresses: %s", ns.Name, s)
	}
	return nil
}

// Namespaces lists every namespace of the lab, node first.
func (l *Lab) Namespaces() []NS {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]NS(nil), l.nss...)
}

// Conntrack runs `conntrack args...` in the node namespace.
func (l *Lab) Conntrack(t testing.TB, args ...string) string {
	t.Helper()
	return l.Node.Run(t, append([]string{"conntrack"}, args...)...)
}

// IPTablesSave dumps the node's rules with "<tool>-save"; tool is e.g.
// "iptables" (the default when empty), "iptables-legacy", "iptables-nft"
// or "ip6tables".
func (l *Lab) IPTablesSave(t testing.TB, tool string) string {
	t.Helper()
	if tool == "" {
		tool = "iptables"
	}
	return l.Node.Run(t, tool+"-save")
}

// destroy kills leftover processes inside the lab's namespaces and deletes
// them. Listeners registered with t.Cleanup after New have already been
// closed by the time this runs (cleanups run last-in first-out).
func (l *Lab) destroy() {
	var errs []error
	nss := l.Namespaces()
	for i := len(nss) - 1; i >= 0; i-- {
		if err := removeNS(nss[i].Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.t.Errorf("netlab: teardown: %v", err)
	}
}

// removeNS deletes a namespace created by this package. Processes still
// inside it (e.g. a daemon a test forgot to stop) would keep the namespace
// alive invisibly, so they are killed; they can only be ours since nobody
// else knows the name.
func removeNS(name string) error {
	if _, err := os.Stat(nsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := run("netns "+name, "ip", "netns", "pids", name); err == nil {
		for _, f := range strings.Fields(out) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid == os.Getpid() {
				continue
			}
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	_, err := run("netns "+name, "ip", "netns", "delete", name)
	return err
}

func nsPath(name string) string { return "/var/run/netns/" + name }
