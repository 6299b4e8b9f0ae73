package healthcheck

import (
	"net"
	"net/netip"
	"sync"
)

// limits are the bounds a server's listeners share. golang.org/x/net's
// netutil.LimitListener bounds one listener; a health-check server has
// one per port and address, and also bounds each client address, so the
// bounds live here.
type limits struct {
	// sem holds a token per open connection. A listener takes one only
	// once it has accepted a connection, and closes the connection at
	// once when there is none free: a listener waiting for a connection
	// holds no slot (with more listeners than slots, the idle ones would
	// otherwise keep their ports from ever answering), and a flood of
	// connections costs svcnat at most one descriptor per listener, for
	// an instant, beyond the bound, leaving those the daemon needs to
	// plan and to check its canary.
	sem       chan struct{}
	perSource int

	mu     sync.Mutex
	source map[netip.Addr]int
}

func newLimits(total, perSource int) *limits {
	return &limits{sem: make(chan struct{}, total), perSource: perSource, source: map[netip.Addr]int{}}
}

// take counts a connection from src, or says it is one too many.
func (l *limits) take(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.source[src] >= l.perSource {
		return false
	}
	l.source[src]++
	return true
}

func (l *limits) give(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.source[src]--; l.source[src] <= 0 {
		delete(l.source, src)
	}
}

// limitListener is a listener under a server's limits.
type limitListener struct {
	net.Listener
	lim *limits
}

func newLimitListener(ln net.Listener, lim *limits) *limitListener {
	return &limitListener{Listener: ln, lim: lim}
}

// Accept returns the next connection there is room for; one over a bound
// (every slot taken, or its source holding its share) is closed at once,
// unanswered.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.lim.sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		src := sourceAddr(c)
		if l.lim.take(src) {
			return &limitConn{Conn: c, lim: l.lim, src: src}, nil
		}
		c.Close()
		<-l.lim.sem
	}
}

func sourceAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	lim       *limits
	src       netip.Addr
	closeOnce sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.lim.give(c.src)
		<-c.lim.sem
	})
	return err
}
