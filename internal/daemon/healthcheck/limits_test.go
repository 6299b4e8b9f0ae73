package healthcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bound is how long a test waits for something that must happen; it
// fails the test, it does not time anything.
const bound = 10 * time.Second

// serve syncs s with one service on a free loopback port and returns it.
func serve(t *testing.T, s *Server) int {
	t.Helper()
	port := freePort(t)
	if err := s.Sync([]Service{{Namespace: "default", Name: "web", Port: port, LocalEndpoints: 1}}); err != nil {
		t.Fatal(err)
	}
	return port
}

// keepAlive dials addr and makes one keep-alive request on the
// connection, returning it open and ready for the next.
func keepAlive(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	request(t, c, br)
	return c, br
}

// request sends a GET on c and reads its answer, within bound.
func request(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetDeadline(time.Now().Add(bound))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// closedByServer waits (up to bound) for the server to close c: a read
// that ends other than by the deadline.
func closedByServer(t *testing.T, c net.Conn, br *bufio.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(bound))
	_, err := br.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still open after %v (read: %v)", what, bound, err)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	s := &Server{IdleTimeout: 50 * time.Millisecond, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	defer s.Close()
	port := serve(t, s)
	c, br := keepAlive(t, "127.0.0.1:"+strconv.Itoa(port))
	closedByServer(t, c, br, "an idle keep-alive connection")
}

func TestSlowRequestClosed(t *testing.T) {
	s := &Server{ReadTimeout: 50 * time.Millisecond, IdleTimeout: time.Minute, WriteTimeout: time.Minute}
	defer s.Close()
	port := serve(t, s)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), bound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Half a request line, and then nothing: a slowloris.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost:"); err != nil {
		t.Fatal(err)
	}
	closedByServer(t, c, bufio.NewReader(c), "a connection whose request never ends")
}

// With MaxConns connections held, the next one is closed unanswered at
// once (it holds no descriptor of the server's beyond that instant);
// once one of them closes, the next is served, and so is everyone after.
func TestConnectionCap(t *testing.T) {
	const max = 2
	s := &Server{MaxConns: max, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	defer s.Close()
	port := serve(t, s)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var held []net.Conn
	for range max {
		c, _ := keepAlive(t, addr)
		held = append(held, c)
	}
	extra, err := net.DialTimeout("tcp", addr, bound)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	// Sent before the server closes it or not: either way unanswered.
	io.WriteString(extra, "GET / HTTP/1.1\r\nHost: node\r\n\r\n")
	closedByServer(t, extra, bufio.NewReader(extra), fmt.Sprintf("connection %d while %d are held", max+1, max))
	if n := s.lim.open(); n != max {
		t.Fatalf("%d connections open, want the %d held", n, max)
	}
	held[0].Close()
	waitOpen(t, s, max-1)
	keepAlive(t, addr)
	for _, c := range held[1:] {
		c.Close()
	}
	waitOpen(t, s, 1)
	for range 2 * max {
		if code, _ := get(t, port); code != 200 {
			t.Fatalf("after the connections closed: %d", code)
		}
	}
}

// The port listens on the node's addresses inside node_port_addresses
// only; it follows them as they change; none listens everywhere.
func TestNodePortAddresses(t *testing.T) {
	one, two := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	addrs := []netip.Addr{one, two}
	var logged bytes.Buffer
	s := &Server{Addresses: func() ([]netip.Addr, error) { return addrs, nil }, Log: slog.New(slog.NewTextHandler(&logged, nil))}
	defer s.Close()
	port := freePort(t)
	svc := Service{Namespace: "default", Name: "web", Port: port, LocalEndpoints: 1}
	answers := func(a netip.Addr) bool {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, uint16(port)).String(), bound)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	check := func(what string, want1, want2 bool) {
		t.Helper()
		if got1, got2 := answers(one), answers(two); got1 != want1 || got2 != want2 {
			t.Fatalf("%s: answers on %v %v, on %v %v; want %v, %v", what, one, got1, two, got2, want1, want2)
		}
	}
	svc.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	check("node_port_addresses 127.0.0.2/32", false, true)
	svc.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	check("node_port_addresses 127.0.0.1/32", true, false)
	svc.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	check("node_port_addresses matching no address", false, false)
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logged.String(), "listens nowhere"); n != 1 {
		t.Fatalf("a port with no address to listen on is said %d times in two passes, want once:\n%s", n, logged.String())
	}
	svc.NodePortAddresses = nil
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	check("no node_port_addresses", true, true)
}

// One source holds at most MaxConnsPerSource connections: its next ones
// are closed unanswered at once, so it cannot take every slot, and
// another source is still served.
func TestConnectionsPerSource(t *testing.T) {
	const perSource = 2
	s := &Server{MaxConns: 2 * perSource, MaxConnsPerSource: perSource,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	defer s.Close()
	port := serve(t, s)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for range perSource {
		keepAlive(t, addr)
	}
	c, err := net.DialTimeout("tcp", addr, bound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closedByServer(t, c, bufio.NewReader(c), "a connection over the source's bound")
	d := net.Dialer{Timeout: bound, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	request(t, other, bufio.NewReader(other))
}

// open counts the connections the server holds open, over every port.
func (l *limits) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.source {
		n += c
	}
	return n
}

// waitOpen waits (up to bound) until s holds at most n connections open.
func waitOpen(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for s.lim.open() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after %v, want at most %d", s.lim.open(), bound, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every port answers however many ports there are: a listener waiting for
// a connection holds none of the MaxConns slots, so with more ports than
// MaxConns (one per port and node address: 70 Local services on a node
// with two addresses pass the default 128) each port still answers once
// the connections before it have closed, whichever order it is asked in.
func TestMorePortsThanMaxConns(t *testing.T) {
	const max, ports = 2, 6
	s := &Server{MaxConns: max, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	defer s.Close()
	var svcs []Service
	seen := map[int]bool{}
	for len(svcs) < ports {
		if p := freePort(t); !seen[p] {
			seen[p] = true
			svcs = append(svcs, Service{Namespace: "default", Name: "web" + strconv.Itoa(len(svcs)), Port: p, LocalEndpoints: 1})
		}
	}
	if err := s.Sync(svcs); err != nil {
		t.Fatal(err)
	}
	// Last opened first: the listeners that started last are the ones
	// that found every slot taken.
	for i := len(svcs) - 1; i >= 0; i-- {
		addr := "127.0.0.1:" + strconv.Itoa(svcs[i].Port)
		c, err := net.DialTimeout("tcp", addr, bound)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(bound))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("port %d of %d (%s), asked with no other connection open: %v", len(svcs)-i, ports, addr, err)
		}
		resp.Body.Close()
		c.Close()
		waitOpen(t, s, 0)
	}
}
