package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/config"
	endpointchecks "github.com/svcnat/svcnat/internal/daemon/checks"
	"github.com/svcnat/svcnat/internal/daemon/healthcheck"
	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/daemon/reconcile"
	"github.com/svcnat/svcnat/internal/engine"
	hv "github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

func reconcileCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "reconcile",
		Usage: "keep the live rules equal to the configuration: re-plan every interval, on file changes and when a canary chain goes; apply when needed",
		Flags: []ucli.Flag{
			&ucli.DurationFlag{Name: "interval", Value: 30 * time.Second, EnvVars: []string{"SVCNAT_INTERVAL"},
				Usage: "time between passes"},
			&ucli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"SVCNAT_LOG_FORMAT"},
				Usage: "text or json: one structured line per event on stderr"},
			&ucli.StringFlag{Name: "metrics-addr", EnvVars: []string{"SVCNAT_METRICS_ADDR"},
				Usage: "serve Prometheus /metrics and the daemon's /healthz on this address (IP:PORT, or :PORT for every address; no host names), in the --netns namespace"},
			&ucli.IntFlag{Name: "check-concurrency", Value: endpointchecks.DefaultConcurrency, EnvVars: []string{"SVCNAT_CHECK_CONCURRENCY"},
				Usage: "at most this many endpoint health checks in flight (health_check blocks); an endpoint that times out holds one for its timeout"},
			lockTimeoutFlag(),
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			log, err := newLogger(c.App.ErrWriter, c.String("log-format"))
			if err != nil {
				return err
			}
			interval := c.Duration("interval")
			if interval <= 0 {
				return fmt.Errorf("--interval %s is not positive", interval)
			}
			if n := c.Int("check-concurrency"); n < 1 || n > 10000 {
				return fmt.Errorf("--check-concurrency %d is not between 1 and 10000", n)
			}
			// SIGTERM and SIGINT end the loop after the current pass;
			// SIGHUP asks for a pass now, reading the configuration.
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{})
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
			}()

			e, err := openEngine(c, g, reconcilePrefix(g))
			if err != nil {
				return err
			}
			e.Origin = engine.OriginReconcile // its generations say the daemon made them
			m := metrics.New()
			m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			if err := recordedMetrics(m, g.StateDir); err != nil {
				log.Warn("reading the state for the metrics failed", "err", err)
			}
			health := &healthcheck.Server{NetNS: g.NetNS, Log: log}
			defer health.Close()
			loop := &reconcile.Loop{Engine: e, Config: g.Config, Node: g.nodeName, Interval: interval,
				Reload: reload, Log: log, Metrics: m, Health: health, NetNS: g.NetNS, Loaded: LimitMemory}
			// The checks go from the namespace the rules are in, and hand
			// their findings to the loop.
			loop.Checks = &endpointchecks.Checker{NetNS: g.NetNS, Concurrency: c.Int("check-concurrency"),
				OnResult: func(_ hv.Key, err error) { loop.CheckResult(err == nil) },
				OnChange: func(changes []endpointchecks.Change) {
					for _, ch := range changes {
						loop.Transition(ch.Key, ch.Status)
					}
				}}
			if addr := c.String("metrics-addr"); addr != "" {
				srv, err := serveMetrics(g.NetNS, addr, m, loop)
				if err != nil {
					return err
				}
				defer srv.Close()
				loop.Relisten = srv.listen
				log.Info("serving metrics", "addr", addr, "netns", g.NetNS)
			}
			log.Info("reconciling", "config", g.Config, "interval", interval, "backend", e.Kernel.Name(), "netns", g.NetNS, "state_dir", g.StateDir)
			return loop.Run(ctx)
		},
		Before: checks(noArgs, liveOnly),
	}
}

// reconcilePrefix is the chain prefix the host is opened for (the backend
// survey looks for its chains): the recorded one, else, on a host svcnat
// has not applied to, the configuration's or the default. The loop reads
// the configuration itself; this reads it only when nothing is recorded.
func reconcilePrefix(g Globals) string {
	if p := engine.RecordedPrefix(g.StateDir); p != "" {
		return p
	}
	if cfg, diags := config.Load(g.Config); !diags.HasErrors() {
		return cfg.Settings.ChainPrefix
	}
	return config.DefaultChainPrefix
}

// newLogger is reconcile's logger. Its JSON lines give durations in
// seconds, as floats under keys ending in _seconds ("took_seconds":
// 0.115), as the metrics do: slog would write nanoseconds, a unit a log
// shipper's reader has to know. Text keeps them as a person reads them
// (took=115ms).
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: durationSeconds})), nil
	}
	return nil, withHint(fmt.Errorf("unknown log format %q", format), "use --log-format text or json")
}

// durationSeconds writes a duration attribute as seconds (newLogger).
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key+"_seconds", a.Value.Duration().Seconds())
	}
	return a
}

// serveMetrics serves /metrics and /healthz on addr, listening inside
// namespace ns: with --netns, everything svcnat does happens there.
func serveMetrics(ns, addr string, m *metrics.Metrics, loop *reconcile.Loop) (*metricsServer, error) {
	// A host name would be resolved outside ns: refused before any pass.
	if err := netns.LiteralAddr(addr, true); err != nil {
		return nil, withHint(fmt.Errorf("--metrics-addr %q: %w", addr, err),
			"give an IP address and port (127.0.0.1:9823) or a port alone (:9823, every address): svcnat resolves no host names")
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		healthy := loop.Healthy()
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"healthy": healthy, "currentTime": time.Now().UTC()})
	})
	s := &metricsServer{netns: ns, addr: addr, handler: mux}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// metricsServer is the --metrics-addr server. It can listen again: a
// socket stays in the namespace it was made in, and the loop asks for a
// new one when --netns was deleted and made again.
type metricsServer struct {
	netns, addr string
	handler     http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// listen serves on a new listener in the namespace netns names now, then
// closes the server it replaces.
func (s *metricsServer) listen() error {
	ln, err := netns.Listen(s.netns, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	s.mu.Lock()
	old := s.srv
	s.srv = srv
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close stops serving.
func (s *metricsServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.Close()
}

// metricsFileFlag is --metrics-file of the one-shot commands that change
// rules.
func metricsFileFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "metrics-file", EnvVars: []string{"SVCNAT_METRICS_FILE"},
		Usage: "write this run's metrics to PATH in the node_exporter textfile format (atomically; name it *.prom)"}
}

// writeMetricsFile writes a run's metrics where --metrics-file says: what
// the state records (its generation and time, read after the run), then
// what the run did; a failure to write is a warning: the rules are what
// they are.
func writeMetricsFile(c *ucli.Context, res *engine.Result, err error) {
	path := c.String("metrics-file")
	if path == "" {
		return
	}
	m := metrics.New()
	if g, gerr := readGlobals(c); gerr == nil {
		if rerr := recordedMetrics(m, g.StateDir); rerr != nil {
			fmt.Fprintf(c.App.ErrWriter, "svcnat: warning: --metrics-file: %v\n", rerr)
		}
	}
	m.Applied(res, err)
	if werr := m.WriteFile(path); werr != nil {
		fmt.Fprintf(c.App.ErrWriter, "svcnat: warning: writing --metrics-file: %v\n", werr)
	}
}

// recordedMetrics sets m from the state directory's record, so that the
// first scrape or a textfile tells the recorded generation, not zeros.
func recordedMetrics(m *metrics.Metrics, stateDir string) error {
	rec, err := engine.ReadRecorded(stateDir)
	if err != nil {
		return err
	}
	m.Recorded(rec)
	return nil
}
