package healthcheck

import (
	"net"
	"sync"
)

// limitListener accepts a connection only while fewer than cap(sem) of
// the server's connections are open, over all its listeners: the others
// wait in the kernel's accept queue, holding no descriptor of svcnat's,
// so a flood of connections cannot take the descriptors the daemon needs
// to plan and to check its canary. golang.org/x/net/netutil's
// LimitListener bounds one listener; a health-check server has one per
// port and address, so the bound is shared here.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, sem chan struct{}) *limitListener {
	return &limitListener{Listener: ln, sem: sem, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, sem: l.sem}, nil
}

// Close also wakes an Accept waiting for a free slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	sem       chan struct{}
	closeOnce sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { <-c.sem })
	return err
}
