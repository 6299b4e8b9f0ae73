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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/svcnat/svcnat/config"
	"github.com/svcnat/svcnat/iptables"
)

// Service is one service with a health-check node port.
type Service struct {
	Namespace, Name string
	Port            int
	// LocalEndpoints counts this node's ready endpoints (by address: one
	// endpoint serving two ports counts once), as kube-proxy does.
	LocalEndpoints int
}

// Services are cfg's services that get a health-check node port on node:
// external traffic policy Local and a health_check_node_port.
func Services(cfg *config.Config, node string) []Service {
	var out []Service
	for _, s := range cfg.Services {
		if s.HealthCheckNodePort == 0 || s.ExternalTrafficPolicy != config.PolicyLocal {
			continue
		}
		local := map[string]bool{}
		for _, e := range s.Endpoints {
			if e.Node == node && e.Ready {
				local[e.Address.String()] = true
			}
		}
		ns, name, ok := strings.Cut(s.Name, "/")
		if !ok {
			ns, name = "", s.Name
		}
		out = append(out, Service{Namespace: ns, Name: name, Port: s.HealthCheckNodePort, LocalEndpoints: len(local)})
	}
	return out
}

// Server serves the health-check ports, inside network namespace NetNS
// ("" for svcnat's own), on every address there.
type Server struct {
	NetNS string
	// Healthy says whether svcnat itself is healthy (its last pass
	// succeeded): kube-proxy's serviceProxyHealthy. Nil: always.
	Healthy func() bool
	Log     *slog.Logger

	mu    sync.Mutex
	ports map[int]*port
}

type port struct {
	svc Service
	srv *http.Server
}

// Sync serves exactly svcs: new ports open, gone ones close, counts
// change in place. A port that cannot be opened is reported and the
// others still served.
func (s *Server) Sync(svcs []Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports == nil {
		s.ports = map[int]*port{}
	}
	want := map[int]Service{}
	for _, svc := range svcs {
		want[svc.Port] = svc
	}
	for n, p := range s.ports {
		if w, ok := want[n]; !ok || w.Namespace != p.svc.Namespace || w.Name != p.svc.Name {
			p.srv.Close()
			delete(s.ports, n)
			s.log().Info("health check port closed", "port", n, "service", p.svc.Namespace+"/"+p.svc.Name)
		}
	}
	var errs []error
	for n, svc := range want {
		if p, ok := s.ports[n]; ok {
			p.svc = svc
			continue
		}
		// Made on a thread in the namespace, the socket stays there
		// while the server's goroutines use it.
		ln, err := iptables.Listen(s.NetNS, "tcp", ":"+strconv.Itoa(n))
		if err != nil {
			errs = append(errs, fmt.Errorf("health check port %d of %s/%s: %w", n, svc.Namespace, svc.Name, err))
			continue
		}
		p := &port{svc: svc}
		p.srv = &http.Server{Handler: s.handler(n), ReadHeaderTimeout: 5 * time.Second}
		s.ports[n] = p
		go p.srv.Serve(ln)
		s.log().Info("health check port open", "port", n, "service", svc.Namespace+"/"+svc.Name)
	}
	return errors.Join(errs...)
}

// Close stops serving every port.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, p := range s.ports {
		p.srv.Close()
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
