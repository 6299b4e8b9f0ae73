package iptables

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// Detection is what Survey found in a namespace and the backend it chose.
type Detection struct {
	Backend Backend
	// Reason says in a few words why Backend was chosen.
	Reason      string
	NFT, Legacy Usage
}

// Usage is what one backend holds, over IPv4 and IPv6.
type Usage struct {
	// Available: the backend's save programs were found and ran.
	Available bool
	// Rules counts rules plus user chains; 0 means the backend holds no
	// rules (built-in chains and their policies do not count).
	Rules int
	// Owned lists svcnat's chains ("IPv4 nat SVCNAT-SERVICES"), sorted.
	Owned []string
	// Tables counts the tables its save listed, empty ones included
	// (legacy lists only the tables that exist), over IPv4 and IPv6.
	Tables int
}

// Mixed reports whether both backends hold rules, which an operator should
// hear about: tools using the other backend do not see svcnat's rules.
func (d Detection) Mixed() bool { return d.NFT.Rules > 0 && d.Legacy.Rules > 0 }

// LegacyTables reports whether the legacy backend has tables beside the
// nft backend, which svcnat works on when b is NFT: iptables-nft's
// programs print "# Warning: iptables-legacy tables present" then, which
// svcnat keeps out of its output (withoutLegacyWarning) so that the CLI
// can say it once. Known when the legacy backend was saved whole, which
// Survey does whenever svcnat's chains are not in it.
func (d Detection) LegacyTables(b Backend) bool { return b == NFT && d.Legacy.Tables > 0 }

// OtherBackendError is Open refusing an explicit backend while svcnat's
// chains live in the other one: a second rule set there would be invisible
// to the first. It matches ErrOtherBackend.
type OtherBackendError struct {
	Asked     Backend
	Detection Detection
}

func (e *OtherBackendError) Error() string {
	return fmt.Sprintf("--backend %s, but svcnat's chains are in the other backend (%s); nothing was changed", e.Asked, e.Detection.Reason)
}

func (e *OtherBackendError) Unwrap() error { return ErrOtherBackend }

// Open is svcnat's one choice of backend. It surveys both backends in
// opts.NetNS (Survey) even when opts.Backend names one, because rules
// written to one are invisible to the other. With Auto it takes the
// backend Survey chose, and refuses svcnat's chains in both
// (ErrBothBackends): only the operator can tell which set is the live one.
// An explicit backend is refused while svcnat's chains are in the other
// backend only (ErrOtherBackend: it would make a second set), but works
// when both hold them, so that `destroy --backend X` can remove X's set:
// the caller warns then (Detection.OtherOwned). It returns the runner and
// what the survey found, so that the caller can also warn when both
// backends hold rules (Detection.Mixed).
func Open(opts Options) (Interface, Detection, error) {
	if opts.Backend == "" {
		opts.Backend = Auto
	}
	if _, err := ParseBackend(string(opts.Backend)); err != nil {
		return nil, Detection{}, err
	}
	d, err := Survey(opts.NetNS, opts.ChainPrefix)
	both := errors.Is(err, ErrBothBackends)
	if err != nil && (!both || opts.Backend == Auto) {
		return nil, d, fmt.Errorf("choosing the iptables backend: %w", err)
	}
	switch b := opts.Backend; {
	case b == Auto:
		opts.Backend = d.Backend
	case both:
		// Works on b; the caller warns about the other set.
	case len(d.OtherOwned(b)) > 0:
		return nil, d, &OtherBackendError{Asked: b, Detection: d}
	}
	ipt, err := New(opts)
	return ipt, d, err
}

// OtherOwned lists svcnat's chains that Survey found in the backend other
// than b ("IPv4 nat SVCNAT-SERVICES"); where svcnat's marker chain was
// found, only that chain is listed.
func (d Detection) OtherOwned(b Backend) []string {
	switch b {
	case NFT:
		return d.Legacy.Owned
	case Legacy:
		return d.NFT.Owned
	}
	return nil
}

// Survey looks at both backends in namespace ns and decides, as
// kubernetes-sigs/iptables-wrappers does with kubelet's marker chains, but
// with svcnat's own chains as the marker:
//
//  1. svcnat chains in both backends: a *BothBackendsError (ErrBothBackends);
//     the operator must remove one set or pass --backend.
//  2. svcnat chains in one backend: that backend, so svcnat keeps writing
//     where its rules are.
//  3. otherwise the backend that holds any rules (a user chain or a rule);
//     if both do, the one holding more (Reason says so, for the CLI to
//     report), nft on a tie.
//  4. no rules anywhere: nft, the default of current distributions and of
//     iptables-wrappers.
//
// It never runs a full save of the backend that holds svcnat's chains,
// which costs seconds with thousands of them: the marker is the nat chain
// PREFIX-SERVICES, which every ruleset svcnat writes has, read by itself
// (iptables -t nat -S CHAIN; for legacy only when its nat table exists,
// since naming a legacy table creates it). The other backend, which then
// holds none of svcnat's chains, is saved whole: its rules tell whether
// both backends are in use, and any svcnat chain left there without the
// marker (an apply killed while staging) still counts as svcnat's. Without
// a marker anywhere, both are saved and counted.
//
// Like iptables-wrappers it is best effort: a backend whose programs are
// missing or fail counts as empty. An empty prefix skips rules 1 and 2.
func Survey(ns, prefix string) (Detection, error) {
	if ns != "" {
		h, err := netns.Open(ns)
		if err != nil {
			return Detection{Backend: NFT}, err
		}
		h.Close()
	}
	var d Detection
	d.NFT.Owned = markers(ns, NFT, prefix)
	d.Legacy.Owned = markers(ns, Legacy, prefix)
	switch nm, lm := len(d.NFT.Owned) > 0, len(d.Legacy.Owned) > 0; {
	case nm && !lm:
		d.NFT.Available, d.NFT.Rules = true, len(d.NFT.Owned)
		d.Legacy = survey(ns, Legacy, prefix)
	case lm && !nm:
		d.Legacy.Available, d.Legacy.Rules = true, len(d.Legacy.Owned)
		d.NFT = survey(ns, NFT, prefix)
	case !nm && !lm:
		d.NFT, d.Legacy = survey(ns, NFT, prefix), survey(ns, Legacy, prefix)
	}
	n, l := d.NFT, d.Legacy
	switch {
	case len(n.Owned) > 0 && len(l.Owned) > 0:
		d.Backend, d.Reason = NFT, "svcnat chains in both backends"
		return d, &BothBackendsError{NFT: n.Owned, Legacy: l.Owned}
	case len(n.Owned) > 0:
		d.Backend, d.Reason = NFT, "svcnat chains are in the nft backend"
	case len(l.Owned) > 0:
		d.Backend, d.Reason = Legacy, "svcnat chains are in the legacy backend"
	case n.Rules > 0 && l.Rules > 0:
		d.Backend = NFT
		if l.Rules > n.Rules {
			d.Backend = Legacy
		}
		d.Reason = fmt.Sprintf("rules in both backends (nft %d, legacy %d); using the one with more", n.Rules, l.Rules)
	case l.Rules > 0:
		d.Backend, d.Reason = Legacy, "only the legacy backend holds rules"
	case n.Rules > 0:
		d.Backend, d.Reason = NFT, "only the nft backend holds rules"
	default:
		d.Backend, d.Reason = NFT, "no rules in either backend; nft is the default"
	}
	return d, nil
}

// markers lists the marker chains (nat PREFIX-SERVICES) backend b holds,
// by single-chain reads.
func markers(netns string, b Backend, prefix string) []string {
	if prefix == "" {
		return nil
	}
	marker := prefix + "-SERVICES"
	var out []string
	for _, fam := range backend.Families {
		bins, _, err := findBinaries(b, fam)
		if err != nil || bins.cmd == "" {
			continue
		}
		if b == Legacy && !legacyTableExists(netns, fam, rules.TableNAT) {
			continue
		}
		ipt, err := command(bins.cmd, fam, waitSeconds(0))
		if err != nil {
			continue
		}
		if _, ok, err := listChain(netns, ipt, rules.TableNAT, marker); err == nil && ok {
			out = append(out, fmt.Sprintf("%s %s %s", fam, rules.TableNAT, marker))
		}
	}
	return out
}

// legacyTableExists reports whether the legacy (x_tables) table exists in
// namespace ns, from /proc/net/ip{,6}_tables_names as the namespace's
// thread sees it: naming a table that does not exist would create it.
func legacyTableExists(ns string, fam backend.Family, table string) bool {
	name := "/proc/thread-self/net/ip_tables_names"
	if fam == backend.IPv6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	var data []byte
	if err := netns.Do(ns, func() (err error) { data, err = os.ReadFile(name); return err }); err != nil {
		return false
	}
	for _, t := range strings.Fields(string(data)) {
		if t == table {
			return true
		}
	}
	return false
}

// survey saves both families of backend b whole and counts what it holds.
func survey(netns string, b Backend, prefix string) Usage {
	var u Usage
	for _, fam := range backend.Families {
		bins, _, err := findBinaries(b, fam)
		if err != nil {
			continue
		}
		rs, err := save(netns, bins.save, fam, nil)
		if err != nil {
			continue
		}
		u.Available = true
		u.Tables += len(rs.Tables)
		for _, t := range rs.Tables {
			for _, c := range t.Chains {
				u.Rules += len(c.Rules)
				if c.Builtin() {
					continue
				}
				u.Rules++
				if prefix != "" && backend.OwnsIn(prefix, t.Name, c.Name) {
					u.Owned = append(u.Owned, fmt.Sprintf("%s %s %s", fam, t.Name, c.Name))
				}
			}
		}
	}
	sort.Strings(u.Owned)
	return u
}
