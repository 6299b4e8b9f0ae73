// Package healthcheck serves kube-proxy's health-check node ports: for a
// service with external traffic policy Local and a health_check_node_port,
// an HTTP endpoint on that port that answers 200 while this node has local
// ready endpoints for the service and 503 otherwise, with kube-proxy's JSON
// body. An external load balancer probes it to send traffic only to nodes
// that can serve it.
package healthcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/service"
)

// Service is one service with a health-check node port.
type Service struct {
	Namespace, Name string
	Port            int
	// LocalEndpoints counts this node's ready endpoints (by address: one
	// endpoint serving two ports counts once), as kube-proxy does: the
	// service model's Service.LocalReady.
	LocalEndpoints int
	// NodePortAddresses are the node_port_addresses CIDRs: the port
	// listens on this node's addresses inside them, none: on every
	// address.
	NodePortAddresses []netip.Prefix
}

// Services are cfg's services that get a health-check node port on node:
// external traffic policy Local and a health_check_node_port. Their
// local endpoints are counted by the service model, which decides for the
// rules too which endpoints are on node.
func Services(cfg *config.Config, node string) []Service {
	var probed []*config.Service
	for _, s := range cfg.Services {
		if s.HealthCheckNodePort != 0 && s.ExternalTrafficPolicy == config.PolicyLocal {
			probed = append(probed, s)
		}
	}
	if len(probed) == 0 {
		return nil
	}
	// Only the probed services are modelled: the daemon asks on every
	// pass, and the others' endpoints do not matter here.
	m := service.Build(&config.Config{Services: probed}, service.Options{Node: node})
	out := make([]Service, 0, len(m.Services))
	for _, s := range m.Services {
		ns, name, ok := strings.Cut(s.Config.Name, "/")
		if !ok {
			ns, name = "", s.Config.Name
		}
		out = append(out, Service{Namespace: ns, Name: name, Port: s.Config.HealthCheckNodePort, LocalEndpoints: s.LocalReady,
			NodePortAddresses: cfg.Settings.NodePortAddresses})
	}
	return out
}

// The defaults of Server's limits. A load balancer's probe is one small
// request on a fresh connection every few seconds from a handful of
// sources; these leave it room and keep a client that connects and
// sends nothing, or keeps a connection idle, from holding it for long.
const (
	DefaultReadTimeout  = 5 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultIdleTimeout  = 10 * time.Second
	// DefaultMaxConns is far below the descriptors the daemon may open
	// (Go raises the soft RLIMIT_NOFILE to the hard limit at start; the
	// hard limit is 4096 or more on common systems, systemd's 524288),
	// so a flood of connections leaves the daemon those it needs to
	// read its configuration, plan, apply and check its canary.
	DefaultMaxConns = 128
	// DefaultMaxConnsPerSource leaves a probing load balancer (a few
	// connections from each of its addresses) most of the slots while
	// one client floods.
	DefaultMaxConnsPerSource = 16
)

// maxHeaderBytes bounds a request's header: a probe's is a few lines.
const maxHeaderBytes = 8 << 10

// Server serves the health-check ports, inside network namespace NetNS
// ("" for svcnat's own), where kube-proxy serves them: on the node's
// addresses inside node_port_addresses, or on every address when it is
// empty.
type Server struct {
	NetNS string
	// Healthy says whether svcnat itself is healthy (its last pass
	// succeeded): kube-proxy's serviceProxyHealthy. Nil: always.
	Healthy func() bool
	Log     *slog.Logger
	// Addresses lists this node's addresses, which NodePortAddresses
	// select from. Nil: the interfaces' addresses in NetNS.
	Addresses func() ([]netip.Addr, error)
	// ReadTimeout, WriteTimeout and IdleTimeout bound a request's
	// reading, its answer, and a keep-alive connection's wait for the
	// next request; MaxConns bounds the connections open at once, over
	// every port and address (one more is closed unanswered as soon as
	// it is accepted; a port waiting for a connection holds none, so
	// every port answers whatever their number). Zero: the defaults
	// above. The timeouts are read when a
	// port opens, the bounds on connections on the first Sync.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxConns                               int
	// MaxConnsPerSource bounds the connections one client address holds
	// open: its next ones are closed unanswered at once, so it cannot
	// take every slot from the load balancer's probes.
	MaxConnsPerSource int

	mu    sync.Mutex
	ports map[int]*port
	lim   *limits
}

type port struct {
	svc Service
	// srvs are the port's servers by listening address (the zero Addr
	// for every address).
	srvs map[netip.Addr]*served
	// nowhere: the port had no address to listen on at the last Sync
	// (said once, not on every pass).
	nowhere bool
}

// Sync serves exactly svcs: new ports open, gone ones close, counts
// change in place, and each port listens on the addresses its
// NodePortAddresses select now (a port whose addresses cannot be listed
// keeps the ones it has). A port that cannot be opened is reported and
// the others still served.
func (s *Server) Sync(svcs []Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports == nil {
		s.ports = map[int]*port{}
		s.lim = newLimits(orDefault(s.MaxConns, DefaultMaxConns), orDefault(s.MaxConnsPerSource, DefaultMaxConnsPerSource))
	}
	want := map[int]Service{}
	for _, svc := range svcs {
		want[svc.Port] = svc
	}
	for n, p := range s.ports {
		if w, ok := want[n]; !ok || w.Namespace != p.svc.Namespace || w.Name != p.svc.Name {
			p.close()
			delete(s.ports, n)
			s.log().Info("health check port closed", "port", n, "service", p.svc.name())
		}
	}
	var errs []error
	var local []netip.Addr
	var localErr error
	listed := false
	for n, svc := range want {
		p, ok := s.ports[n]
		if !ok {
			p = &port{srvs: map[netip.Addr]*served{}}
			s.ports[n] = p
		}
		p.svc = svc
		var addrs []netip.Addr
		if matchAll(svc.NodePortAddresses) {
			addrs = []netip.Addr{{}}
		} else {
			if !listed {
				local, localErr = s.localAddresses()
				listed = true
			}
			if localErr != nil {
				errs = append(errs, fmt.Errorf("health check port %d of %s: listing the node's addresses for node_port_addresses: %w", n, svc.name(), localErr))
				continue
			}
			addrs = nodeIPs(svc.NodePortAddresses, local)
		}
		errs = append(errs, s.listen(p, n, addrs)...)
	}
	return errors.Join(errs...)
}

// listen makes p listen on exactly addrs (the zero address: every
// address), closing the others.
func (s *Server) listen(p *port, n int, addrs []netip.Addr) []error {
	keep := map[netip.Addr]bool{}
	for _, a := range addrs {
		keep[a] = true
	}
	for a, srv := range p.srvs {
		if !keep[a] {
			srv.Close()
			delete(p.srvs, a)
			s.log().Info("health check port closed", "port", n, "addr", addrString(a), "service", p.svc.name())
		}
	}
	if len(addrs) == 0 && !p.nowhere {
		s.log().Warn("health check port listens nowhere: node_port_addresses hold none of the node's addresses", "port", n, "service", p.svc.name())
	}
	p.nowhere = len(addrs) == 0
	var errs []error
	for _, a := range addrs {
		if p.srvs[a] != nil {
			continue
		}
		hostPort := ":" + strconv.Itoa(n)
		if a.IsValid() {
			hostPort = netip.AddrPortFrom(a, uint16(n)).String()
		}
		// Made on a thread in the namespace, the socket stays there
		// while the server's goroutines use it.
		ln, err := netns.Listen(s.NetNS, "tcp", hostPort)
		if err != nil {
			errs = append(errs, fmt.Errorf("health check port %d of %s on %s: %w", n, p.svc.name(), addrString(a), err))
			continue
		}
		srv := &http.Server{
			Handler:           s.handler(n),
			ReadHeaderTimeout: orDefault(s.ReadTimeout, DefaultReadTimeout),
			ReadTimeout:       orDefault(s.ReadTimeout, DefaultReadTimeout),
			WriteTimeout:      orDefault(s.WriteTimeout, DefaultWriteTimeout),
			IdleTimeout:       orDefault(s.IdleTimeout, DefaultIdleTimeout),
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelDebug),
		}
		lln := newLimitListener(ln, s.lim)
		p.srvs[a] = &served{srv, lln}
		go srv.Serve(lln)
		s.log().Info("health check port open", "port", n, "addr", addrString(a), "service", p.svc.name())
	}
	return errs
}

func (s *Server) localAddresses() ([]netip.Addr, error) {
	if s.Addresses != nil {
		return s.Addresses()
	}
	return netns.InterfaceAddrs(s.NetNS)
}

// matchAll: no CIDRs, or one of length zero, select every address, as
// kube-proxy's NodePortAddresses.MatchAll does.
func matchAll(cidrs []netip.Prefix) bool {
	for _, c := range cidrs {
		if c.Bits() == 0 {
			return true
		}
	}
	return len(cidrs) == 0
}

// nodeIPs are the local addresses inside cidrs (kube-proxy's GetNodeIPs),
// sorted. IPv6 link-local ones are left out: listening on one needs the
// interface's zone, which the list does not keep.
func nodeIPs(cidrs []netip.Prefix, local []netip.Addr) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, ip := range local {
		ip = ip.Unmap()
		if seen[ip] || ip.Is6() && ip.IsLinkLocalUnicast() {
			continue
		}
		for _, c := range cidrs {
			if c.Contains(ip) {
				seen[ip] = true
				out = append(out, ip)
				break
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "every address"
	}
	return a.String()
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// served is a port's server on one address, with its listener.
type served struct {
	*http.Server
	ln *limitListener
}

// Close closes the listener too: Serve runs on a goroutine of its own and
// may not have begun when the server is closed, and then http.Server's
// Close would leave the socket open (the port still completing
// handshakes on an address it no longer listens on) until it does.
func (s *served) Close() error {
	err := s.Server.Close()
	s.ln.Close()
	return err
}

func (svc Service) name() string { return svc.Namespace + "/" + svc.Name }

func (p *port) close() {
	for a, srv := range p.srvs {
		srv.Close()
		delete(p.srvs, a)
	}
}

// Reopen closes every port's listeners and opens them again for the same
// services: a socket stays in the namespace it was made in, so after the
// namespace NetNS names was deleted and made again (ip netns del, add) the
// ports answer nowhere until reopened. A port that cannot be opened is
// reported, as by Sync, and opened again by the next Sync.
func (s *Server) Reopen() error {
	s.mu.Lock()
	svcs := make([]Service, 0, len(s.ports))
	for _, p := range s.ports {
		p.close()
		svcs = append(svcs, p.svc)
	}
	s.mu.Unlock()
	return s.Sync(svcs)
}

// Close stops serving every port.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, p := range s.ports {
		p.close()
		delete(s.ports, n)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// answer is kube-proxy's body, field for field.
type answer struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func (s *Server) handler(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		p, ok := s.ports[n]
		var svc Service
		if ok {
			svc = p.svc
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "closed", http.StatusServiceUnavailable)
			return
		}
		var a answer
		a.Service.Namespace, a.Service.Name = svc.Namespace, svc.Name
		a.LocalEndpoints = svc.LocalEndpoints
		a.ServiceProxyHealthy = s.Healthy == nil || s.Healthy()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if a.LocalEndpoints > 0 && a.ServiceProxyHealthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		b, _ := json.MarshalIndent(a, "", "\t")
		w.Write(b)
	})
}
