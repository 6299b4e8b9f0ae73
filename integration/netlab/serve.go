//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Listen opens a listener inside the namespace and closes it when the test
// ends. network and addr are as for net.Listen.
func (ns NS) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := ns.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("netns %s: listen %s %s: %v", ns.Name, network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket is Listen for packet sockets (net.ListenPacket).
func (ns NS) ListenPacket(t testing.TB, network, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("netns %s: listen %s %s: %v", ns.Name, network, addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// ServeHTTP serves HTTP on addr (e.g. ":80", "10.64.1.2:8080") inside the
// namespace until the test ends. Every request is answered with the body
// "<name> <remote ip:port>" (see ParseReply), so tests can tell which server
// answered and which source address it saw. It returns the bound address,
// useful with port 0.
func (ns NS) ServeHTTP(t testing.TB, name, addr string) net.Addr {
	t.Helper()
	a, _ := ns.ServeHTTPUntil(t, name, addr)
	return a
}

// ServeHTTPUntil is ServeHTTP, also returning a function that stops the
// server (its listener closed: new connections are refused) before the
// test ends; calling it again does nothing.
func (ns NS) ServeHTTPUntil(t testing.TB, name, addr string) (net.Addr, func()) {
	t.Helper()
	ln := ns.Listen(t, "tcp", addr)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			fmt.Fprintf(w, "%s %s", name, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr(), stop
}

// ServeUDP answers every datagram on addr (":53", "[::]:5353", ...) inside
// the namespace with "<name> <remote ip:port>" until the test ends.
//
// A wildcard addr gets one socket per address family, and replies leave
// from the address the request was sent to: a plain wildcard UDP socket
// would answer from whatever address the route prefers, which a connected
// client socket silently discards when the request went to a secondary
// address (an external IP on the node's lo, say).
func (ns NS) ServeUDP(t testing.TB, name, addr string) {
	t.Helper()
	ns.ServeUDPUntil(t, name, addr)
}

// ServeUDPUntil is ServeUDP, also returning a function that stops it
// (its sockets closed: datagrams get ICMP port unreachable) before the
// test ends; calling it again does nothing.
func (ns NS) ServeUDPUntil(t testing.TB, name, addr string) func() {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("netns %s: ServeUDP %q: %v", ns.Name, addr, err)
	}
	var binds [][2]string
	switch {
	case host == "" || host == "::":
		binds = [][2]string{{"udp4", net.JoinHostPort("0.0.0.0", port)}, {"udp6", net.JoinHostPort("::", port)}}
	case host == "0.0.0.0":
		binds = [][2]string{{"udp4", addr}}
	default:
		binds = [][2]string{{"udp", addr}}
	}
	var stops []func()
	for _, b := range binds {
		pc := ns.ListenPacket(t, b[0], b[1]).(*net.UDPConn)
		if err := enablePktinfo(pc); err != nil {
			t.Fatalf("netns %s: %s %s: %v", ns.Name, b[0], b[1], err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			serveUDP(pc, name)
		}()
		stops = append(stops, func() {
			pc.Close()
			<-done
		})
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, s := range stops {
				s()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func enablePktinfo(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			serr = err
			return
		}
		if _, v6 := sa.(*unix.SockaddrInet6); v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	return errors.Join(err, serr)
}

func serveUDP(c *net.UDPConn, name string) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, 512)
	for {
		_, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		reply := []byte(fmt.Sprintf("%s %s", name, from))
		_, _, _ = c.WriteMsgUDPAddrPort(reply, replyPktinfo(oob[:oobn]), from)
	}
}

// replyPktinfo turns the received destination address into the control
// message that makes the reply leave from that same address.
func replyPktinfo(oob []byte) []byte {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= 12:
			var info unix.Inet4Pktinfo
			copy(info.Spec_dst[:], m.Data[8:12]) // ipi_addr: header destination
			return unix.PktInfo4(&info)
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 16:
			var info unix.Inet6Pktinfo
			copy(info.Addr[:], m.Data[:16])
			return unix.PktInfo6(&info)
		}
	}
	return nil
}

// ParseReply splits a server reply "<name> <remote>" into its parts.
func ParseReply(reply string) (name, remote string) {
	name, remote, _ = strings.Cut(strings.TrimSpace(reply), " ")
	return name, remote
}

// Dial connects from inside the namespace (network as for net.Dial) within
// the namespace's timeout. Errors keep their cause, so errors.Is(err,
// syscall.ECONNREFUSED) detects a REJECT and a net.Error's Timeout() a DROP.
func (ns NS) Dial(network, addr string) (net.Conn, error) {
	return ns.dialContext(context.Background(), network, addr)
}

// DialTCP is Dial("tcp", addr).
func (ns NS) DialTCP(addr string) (net.Conn, error) {
	return ns.Dial("tcp", addr)
}

func (ns NS) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: ns.timeout()}
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPGet fetches url from inside the namespace on a fresh connection (no
// keep-alive, no proxy) and returns the body. A non-200 status is an error.
func (ns NS) HTTPGet(url string) (string, error) {
	client := &http.Client{
		Timeout: ns.timeout(),
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       ns.dialContext,
			DisableKeepAlives: true,
		},
	}
	resp, err := client.Get(url)
	if err != nil {
		return "", fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("netns %s: GET %s: reading body: %w", ns.Name, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("netns %s: GET %s: %s", ns.Name, url, resp.Status)
	}
	return string(body), nil
}

// UDPRoundTrip sends payload to addr from a fresh socket inside the
// namespace and returns the first reply. A REJECT shows up as
// syscall.ECONNREFUSED, a DROP as a timeout.
func (ns NS) UDPRoundTrip(addr, payload string) (string, error) {
	c, err := ns.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(ns.timeout())); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(payload)); err != nil {
		return "", fmt.Errorf("netns %s: udp %s: %w", ns.Name, addr, err)
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return "", fmt.Errorf("netns %s: udp %s: %w", ns.Name, addr, err)
	}
	return string(buf[:n]), nil
}

// HostPort formats addr and port for Dial, UDPRoundTrip and URLs
// ("10.64.1.2:80", "[fd00:64:1::2]:80").
func HostPort(addr netip.Addr, port int) string {
	return netip.AddrPortFrom(addr, uint16(port)).String()
}

// Eventually polls fn until it returns nil, failing the test with fn's last
// error after timeout. Use it instead of sleeping while rules settle.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// IsRefused reports whether err is a connection refusal (TCP RST or ICMP
// port unreachable), the usual sign of a REJECT rule.
func IsRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// IsTimeout reports whether err is a timeout, the usual sign of a DROP or
// of a packet nobody routes back.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
