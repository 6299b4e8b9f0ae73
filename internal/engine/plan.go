package engine

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/conntrack"
	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// HostOptions say which host OpenHost opens.
type HostOptions struct {
	// NetNS is a network namespace name as `ip netns` makes them; "" is
	// svcnat's own.
	NetNS string
	// Backend is auto or a backend's name (see kernel.Open).
	Backend backend.Name
	// Prefix is the chain prefix svcnat owns; it guides and constrains
	// the choice of backend.
	Prefix string
	// Dump, when set, is a saved iptables-save dump (and Dump.v6) to plan
	// against instead of the kernel: no root, no iptables, no changes.
	Dump string
	// LocalAddresses, when given, stand for the host's own addresses.
	LocalAddresses []netip.Addr
	// RuntimeDir is where the namespace locks and owner records live
	// ("": DefaultRuntimeDir).
	RuntimeDir string
	// Migrate: an explicit Backend opens while svcnat's rules are only in
	// another backend, which Host.Detection.From holds (apply, and only
	// apply, moves them: Engine.Migrate).
	Migrate bool
}

// OpenHost opens the host: the kernel's rules through the backend
// kernel.Open chooses (or a saved dump), the conntrack tool in the same
// namespace, and the host's addresses.
func OpenHost(o HostOptions) (*Host, error) {
	h := &Host{Addresses: HostAddresses(o), NetNS: o.NetNS}
	k, d, err := kernel.Open(kernel.Options{Backend: o.Backend, NetNS: o.NetNS, Prefix: o.Prefix, Dump: o.Dump, Migrate: o.Migrate})
	if err != nil {
		return nil, err
	}
	if o.Dump != "" {
		h.Kernel = k
		return h, nil
	}
	h.Kernel, h.Detection, h.RuntimeDir = k, d, o.RuntimeDir
	if h.RuntimeDir == "" {
		h.RuntimeDir = DefaultRuntimeDir
	}
	if o.NetNS == "" {
		h.RunsIn = runningNetNSName()
	}
	h.Conntrack = conntrack.Netlink{NetNS: o.NetNS}
	return h, nil
}

// HostAddresses returns how the host's addresses are found: the given
// local addresses; none for a dump, which is about another host; else the
// addresses of the interfaces in the namespace.
func HostAddresses(o HostOptions) func() ([]netip.Addr, error) {
	switch {
	case len(o.LocalAddresses) > 0:
		return func() ([]netip.Addr, error) { return o.LocalAddresses, nil }
	case o.Dump != "":
		return nil
	}
	return func() ([]netip.Addr, error) { return netns.InterfaceAddrs(o.NetNS) }
}

// Plan renders cfg for this host, as node, and diffs it against the live
// rules. It takes no lock and changes nothing.
func (e *Engine) Plan(cfg *config.Config, node string) (*planner.Plan, error) {
	p, _, err := e.plan(cfg, node)
	if err != nil {
		return nil, err
	}
	return p, e.unlockedAdopting(p)
}

// plan is Plan, also returning the live rules it read. It renders cfg as
// svcnat reconcile does, with the endpoints its health checks found down
// taken out (healthOverlay), and the plan says which (Plan.Health); the
// configuration's digest stays cfg's own.
func (e *Engine) plan(cfg *config.Config, node string) (*planner.Plan, map[backend.Family]*backend.Ruleset, error) {
	cfg, note := e.healthOverlay(cfg)
	// A backend whose Read makes no use of like is read while the
	// configuration renders (nftables: nft lists the table on one core,
	// svcnat renders on another).
	var ahead chan map[backend.Family]liveRead
	if e.Kernel.Limits().ReadAhead {
		ahead = make(chan map[backend.Family]liveRead, 1)
		go func() { ahead <- e.readLive(nil, false) }()
	}
	res, err := e.Render(cfg, RenderFor{Node: node})
	if err != nil {
		if ahead != nil {
			<-ahead
		}
		return nil, nil, err
	}
	var live map[backend.Family]*backend.Ruleset
	if ahead != nil {
		live, err = liveOf(<-ahead, res.Rulesets)
	} else {
		live, err = e.saveLive(res.Rulesets)
	}
	if err != nil {
		return nil, nil, err
	}
	p := planner.New(cfg.Settings.ChainPrefix, e.Kernel.Name(), res.Rulesets, live)
	p.ChainService, p.Health = res.ChainService, note
	if p.Interrupted, err = e.interrupted(cfg.Settings.ChainPrefix, live); err != nil {
		return nil, nil, err
	}
	return p, live, nil
}

// saveLive reads the live rules of IPv4, and of IPv6 when it is wanted or
// can be read: a host without ip6tables (or booted with IPv6 disabled)
// still serves IPv4-only configurations, while IPv6 chains left from an
// earlier configuration are found and removed wherever ip6tables works.
func (e *Engine) saveLive(desired map[backend.Family]*backend.Ruleset) (map[backend.Family]*backend.Ruleset, error) {
	return liveOf(e.readLive(desired, false), desired)
}

// liveRead is one family's Read.
type liveRead struct {
	rs  *backend.Ruleset
	err error
}

// readLive reads every family, each like its desired ruleset. A family not
// desired is read as a plan reads it, or with whole as the whole host
// (nftables then adds other tables' base chains, for trace).
func (e *Engine) readLive(desired map[backend.Family]*backend.Ruleset, whole bool) map[backend.Family]liveRead {
	out := map[backend.Family]liveRead{}
	for _, f := range backend.Families {
		like, wanted := desired[f]
		if !wanted && !whole {
			like = &backend.Ruleset{Family: f}
		}
		rs, err := e.Kernel.Read(f, like)
		out[f] = liveRead{rs, err}
	}
	return out
}

// liveOf is saveLive's answer from reads: a failed read of IPv6 is left
// out unless desired wants it.
func liveOf(reads map[backend.Family]liveRead, desired map[backend.Family]*backend.Ruleset) (map[backend.Family]*backend.Ruleset, error) {
	live := map[backend.Family]*backend.Ruleset{}
	for _, f := range backend.Families {
		_, wanted := desired[f]
		r := reads[f]
		switch {
		case r.err != nil && f == backend.IPv6 && !wanted:
			continue
		case r.err != nil:
			return nil, fmt.Errorf("reading the live %s rules: %w", f, r.err)
		}
		live[f] = r.rs
	}
	return live, nil
}

// ConfigDigest identifies the configuration a plan or a generation came
// from: its files' names and bytes.
func ConfigDigest(cfg *config.Config) string {
	names := make([]string, 0, len(cfg.Files))
	for n := range cfg.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts [][]byte
	for _, n := range names {
		parts = append(parts, []byte(n), cfg.Files[n].Bytes)
	}
	return state.Digest(parts...)
}

// SavePlan writes p to path for a later ApplySaved, atomically and
// readable by its owner only (it shows the host's rules).
func SavePlan(path string, p *planner.Plan, configDigest string) error {
	data, err := planner.MarshalPlan(p, configDigest)
	if err != nil {
		return err
	}
	if err := state.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving the plan: %w", err)
	}
	return nil
}

// RecordedPrefix is the chain prefix the state directory recorded for
// what svcnat applied, or "" when nothing was recorded. rollback, destroy
// and show use it, so that they work with a broken or missing
// configuration.
func RecordedPrefix(stateDir string) string {
	st, err := readState(stateDir)
	switch {
	case err != nil || st == nil:
		return ""
	case st.Prefix == "" && st.Pending != nil:
		return st.Pending.Prefix // a first apply, pending
	}
	return st.Prefix
}

// State reads the state directory's record without taking the lock; nil
// when there is none.
func (e *Engine) State() (*state.State, error) { return readState(e.StateDir) }

// readState loads the state without creating the directory; nil when
// there is none.
func readState(stateDir string) (*state.State, error) {
	if !state.Exists(stateDir) {
		return nil, nil
	}
	d, err := state.Open(stateDir)
	if err != nil {
		return nil, err
	}
	return d.Load()
}
