// Package health is svcnat's endpoint health: what reconcile's active
// checks (a service's health_check block) found about each endpoint, and
// how that view changes the configuration the rules are rendered from. A
// check can take an endpoint out (not ready, not serving), never put in
// one the file marks not ready: the service model then applies
// kube-proxy's fallbacks unchanged (ready endpoints, else serving
// terminating ones, else the "has no endpoints" rules).
//
// The view is the daemon's; reconcile writes it to the state directory
// (health.json, atomically, with the time it was written), and the
// one-shot commands read it, so that plan, apply and show beside a live
// reconcile render what it renders. A view older than its StaleAfter, or
// whose writer is gone, is ignored: the file's conditions alone decide.
package health

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/state"
)

// FileName is the view's file in the state directory.
const FileName = "health.json"

// Key names one endpoint of one service: endpoint addresses are unique
// within a service (config refuses duplicates).
type Key struct {
	Service  string
	Endpoint netip.Addr
}

func (k Key) String() string { return k.Service + " " + k.Endpoint.String() }

// Status is what the checks found about one endpoint.
type Status struct {
	// Up: the endpoint is in the rotation as the file configures it.
	// An endpoint starts up, before any verdict (see Checked).
	Up bool `json:"up"`
	// Checked: a verdict was reached (rise passes or fall failures in a
	// row); until then Up is the starting assumption.
	Checked bool `json:"checked"`
	// Since is when Up last changed (or the checks began).
	Since time.Time `json:"since"`
	// Consecutive counts the last results in a row that agree (passes
	// when the last check passed, failures when it failed).
	Consecutive int `json:"consecutive"`
	// LastCheck is when the last check ended; LastError why it failed
	// ("" when it passed).
	LastCheck time.Time `json:"last_check,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Target is the address and port checked.
	Target string `json:"target,omitempty"`
	// Check identifies the check the verdict is about (CheckID): a
	// configuration that checks the endpoint otherwise (another port,
	// path or protocol) has no verdict from it yet.
	Check string `json:"check,omitempty"`
}

// CheckID identifies how hc checks target (an address and port): what
// a verdict depends on.
func CheckID(hc *config.HealthCheck, target string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%d",
		hc.Protocol, target, hc.Path, hc.Send, hc.Expect, hc.Interval, hc.Timeout, hc.Rise, hc.Fall))
	return hex.EncodeToString(sum[:8])
}

// View is the health of every checked endpoint.
type View struct {
	// WrittenAt is when the view was written; it is stale after
	// StaleAfter, or at once when the process PID (the daemon) is gone.
	WrittenAt  time.Time
	StaleAfter time.Duration
	PID        int
	// ConfigDigest is the digest of the configuration the checks were
	// made for (engine.ConfigDigest).
	ConfigDigest string
	Endpoints    map[Key]Status
}

// Down reports whether the checks took service's endpoint out.
func (v *View) Down(service string, endpoint netip.Addr) bool {
	if v == nil {
		return false
	}
	st, ok := v.Endpoints[Key{service, endpoint}]
	return ok && !st.Up
}

// downIn reports whether v has endpoint e of s down, by the check s's
// health_check makes of it now: a verdict about another check (the
// configuration changed since) does not count.
func (v *View) downIn(s *config.Service, e *config.Endpoint) bool {
	st, ok := v.Endpoints[Key{s.Name, e.Address}]
	if !ok || st.Up {
		return false
	}
	if st.Check == "" {
		return true // a view that does not say which check
	}
	port, ok := s.HealthCheck.CheckedPort(s, e)
	if !ok {
		return false
	}
	return st.Check == CheckID(s.HealthCheck, netip.AddrPortFrom(e.Address, uint16(port)).String())
}

// Overlay returns cfg with every endpoint v finds down marked not ready
// and not serving (its terminating condition kept), in services that have
// a health_check: the configuration the rules in force are rendered from.
// cfg is not changed: services without a down endpoint are shared, the
// others copied. Overlay(cfg, nil) is cfg.
func Overlay(cfg *config.Config, v *View) *config.Config {
	if v == nil || !anyDown(v) {
		return cfg
	}
	out := *cfg
	out.Services = slices.Clone(cfg.Services)
	for i, s := range out.Services {
		if s.HealthCheck == nil || !serviceDown(v, s) {
			continue
		}
		c := *s
		c.Endpoints = slices.Clone(s.Endpoints)
		for j, e := range c.Endpoints {
			if v.downIn(s, e) && (e.Ready || e.Serving) {
				ce := *e
				ce.Ready, ce.Serving = false, false
				c.Endpoints[j] = &ce
			}
		}
		out.Services[i] = &c
	}
	return &out
}

func anyDown(v *View) bool {
	for _, st := range v.Endpoints {
		if !st.Up {
			return true
		}
	}
	return false
}

func serviceDown(v *View, s *config.Service) bool {
	for _, e := range s.Endpoints {
		if v.downIn(s, e) {
			return true
		}
	}
	return false
}

// Stale reports whether the view no longer speaks for a live daemon at
// now: too old, or its writer is gone.
func (v *View) Stale(now time.Time) bool {
	if v == nil {
		return true
	}
	if now.Sub(v.WrittenAt) > v.StaleAfter {
		return true
	}
	return v.WriterGone()
}

// alive reports whether process pid exists (EPERM: it does, owned by
// another user).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// fileView is the JSON form: endpoints as a sorted list, so the file
// reads and diffs well.
type fileView struct {
	FormatVersion int          `json:"format_version"`
	WrittenAt     time.Time    `json:"written_at"`
	StaleAfter    string       `json:"stale_after"`
	PID           int          `json:"pid"`
	ConfigDigest  string       `json:"config_digest,omitempty"`
	Endpoints     []fileStatus `json:"endpoints"`
}

type fileStatus struct {
	Service  string     `json:"service"`
	Endpoint netip.Addr `json:"endpoint"`
	Status
}

const formatVersion = 1

// Write records v in stateDir, atomically.
func Write(stateDir string, v *View) error {
	fv := fileView{FormatVersion: formatVersion, WrittenAt: v.WrittenAt.UTC(), StaleAfter: v.StaleAfter.String(),
		PID: v.PID, ConfigDigest: v.ConfigDigest, Endpoints: []fileStatus{}}
	for k, st := range v.Endpoints {
		fv.Endpoints = append(fv.Endpoints, fileStatus{Service: k.Service, Endpoint: k.Endpoint, Status: st})
	}
	slices.SortFunc(fv.Endpoints, func(a, b fileStatus) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Endpoint.Compare(b.Endpoint)
	})
	data, err := json.MarshalIndent(fv, "", "  ")
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(filepath.Join(stateDir, FileName), append(data, '\n'), 0o600)
}

// Decode reads a view from data, the content of the file path (which its
// errors name): for a reader that opens the file its own way, as the
// engine does through the state directory (no link followed).
func Decode(data []byte, path string) (*View, error) {
	var fv fileView
	if err := json.Unmarshal(data, &fv); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if fv.FormatVersion != formatVersion {
		return nil, fmt.Errorf("reading %s: format_version %d, want %d", path, fv.FormatVersion, formatVersion)
	}
	stale, err := time.ParseDuration(fv.StaleAfter)
	if err != nil {
		return nil, fmt.Errorf("reading %s: stale_after: %w", path, err)
	}
	v := &View{WrittenAt: fv.WrittenAt, StaleAfter: stale, PID: fv.PID, ConfigDigest: fv.ConfigDigest, Endpoints: map[Key]Status{}}
	for _, e := range fv.Endpoints {
		v.Endpoints[Key{e.Service, e.Endpoint}] = e.Status
	}
	return v, nil
}
