// Package kernel is the one place svcnat chooses a rule backend: Open
// surveys the host and opens the backend to use there (or a saved dump),
// and returns it as a backend.Kernel with what the survey found in words
// the command line prints. Everything above it works through package
// backend and knows no backend.
package kernel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
)

// Auto, as Options.Backend, lets Open choose the backend.
const Auto backend.Name = iptables.Auto

// NameChoices are the values --backend takes, as usage and errors say
// them.
const NameChoices = "auto, nftables, iptables-nft or iptables-legacy (nft and legacy are the last two's old names)"

// ParseName reads a --backend value into the backend's name: auto (also
// ""), or a backend by its name or old alias.
func ParseName(s string) (backend.Name, error) {
	if backend.Name(s) == NFTables {
		return NFTables, nil
	}
	n, err := iptables.ParseBackend(s)
	if err != nil {
		return "", fmt.Errorf("unknown backend %q", s)
	}
	return n, nil
}

// Errors of Open, checked with errors.Is.
var (
	// ErrBothBackends: svcnat's chains are in both iptables backends, so
	// Open cannot tell which set is the live one.
	ErrBothBackends = iptables.ErrBothBackends
	// ErrOtherBackend: an explicit backend was asked for while svcnat's
	// chains are in the other one.
	ErrOtherBackend = iptables.ErrOtherBackend
)

// Options say what Open opens.
type Options struct {
	// Backend is Auto ("" too), "nft" or "legacy".
	Backend backend.Name
	// NetNS is a network namespace name as `ip netns` makes them; "" is
	// svcnat's own.
	NetNS string
	// Prefix is the chain prefix svcnat owns; its chains decide and
	// constrain the choice of backend.
	Prefix string
	// Dump, when set, is a saved iptables-save dump (and Dump.v6) to read
	// instead of the kernel: read-only, no root, no survey.
	Dump string
	// Migrate lets an explicit Backend through while svcnat's rules are
	// only in another backend, for apply to move them (Detection.From):
	// every other command is refused then (ErrOtherBackend).
	Migrate bool
}

// Detection is what choosing the backend found, for the command line to
// report: why this backend, and what the other one holds. It is zero for
// a dump.
type Detection struct {
	// Reason says in a few words why the backend was chosen.
	Reason string
	// Mixed: both backends hold rules, which tools using the other one
	// do not see.
	Mixed bool
	// Other is the backend that was not chosen, and OtherOwned svcnat's
	// chains found in it ("IPv4 nat SVCNAT-SERVICES"): an explicit
	// backend is let through while both hold them, so that one set can be
	// repaired or removed.
	Other      backend.Name
	OtherOwned []string
	// LegacyTables: the legacy backend has tables beside the nft backend
	// in use, which iptables-nft's own programs warn about (svcnat keeps
	// that warning out of its output to say it once); LegacyRules counts
	// the rules they hold.
	LegacyTables bool
	LegacyRules  int
	// From, set only with Options.Migrate, is the backend holding
	// svcnat's rules when another was asked for, opened in the same
	// namespace: apply moves the rules from it to the opened one.
	From backend.Kernel
}

// Open opens the backend o names: a saved dump, the nftables backend,
// or an iptables backend chosen as iptables.Open does (surveying both,
// refusing svcnat's chains in both with Auto, and an explicit backend
// while they are in the other one only). svcnat's rules are in nftables
// when its table (ip or ip6, backend.NFTTable) exists: Auto keeps them
// there, and on a host where neither holds them chooses iptables. An
// explicit backend is refused while svcnat's rules are only in another
// (ErrOtherBackend: it would make a second set that the first hides or
// fights), unless Options.Migrate (apply): it is opened then with the
// backend holding them as Detection.From, so that apply moves them in one
// step. It works, with Detection.OtherOwned for the caller's warning,
// when both hold them.
func Open(o Options) (backend.Kernel, Detection, error) {
	if o.Dump != "" {
		d, err := iptables.OpenDump(o.Dump)
		if err != nil {
			return nil, Detection{}, err
		}
		return d, Detection{}, nil
	}
	want := o.Backend.Canonical()
	held, err := nftables.Holds(o.NetNS, o.Prefix)
	if err != nil {
		if want == NFTables {
			return nil, Detection{}, fmt.Errorf("choosing the backend: %w", err)
		}
		// A kernel or sandbox that cannot answer for nf_tables holds no
		// table of svcnat's there: iptables works as it did before
		// there was an nftables backend (legacy hosts, no root: the
		// iptables survey says why in its own words).
		held = nil
	}
	if want == NFTables || (want == "" || want == Auto) && len(held) > 0 {
		return openNFTables(o, held)
	}
	if len(held) > 0 {
		// An iptables backend was asked for while svcnat's table is in
		// nftables.
		sv, err := iptables.Survey(o.NetNS, o.Prefix)
		if err != nil && !errors.Is(err, iptables.ErrBothBackends) {
			return nil, Detection{}, fmt.Errorf("choosing the backend: %w", err)
		}
		if len(sv.OtherOwned(iptables.Legacy))+len(sv.OtherOwned(iptables.NFT)) == 0 {
			if o.Migrate {
				return migrateTo(o, want, NFTables, "svcnat's table is in nftables ("+strings.Join(held, ", ")+")")
			}
			return nil, Detection{}, &otherBackendError{fmt.Sprintf("--backend %s, but svcnat's rules are in the nftables backend (%s); nothing was changed",
				want, strings.Join(held, ", "))}
		}
	}
	k, d, err := iptables.Open(iptables.Options{Backend: want, NetNS: o.NetNS, ChainPrefix: o.Prefix})
	if ob := (*iptables.OtherBackendError)(nil); o.Migrate && errors.As(err, &ob) {
		return migrateTo(o, want, otherIPTables(want), ob.Detection.Reason)
	}
	if err != nil {
		return nil, Detection{}, err
	}
	b := k.Name()
	out := Detection{Reason: d.Reason, Mixed: d.Mixed(), OtherOwned: d.OtherOwned(b),
		LegacyTables: d.LegacyTables(b), LegacyRules: d.Legacy.Rules}
	switch b {
	case iptables.NFT:
		out.Other = iptables.Legacy
	case iptables.Legacy:
		out.Other = iptables.NFT
	}
	if len(held) > 0 {
		out.Other, out.OtherOwned = NFTables, held
	}
	return k, out, nil
}

// openNFTables opens the nftables backend, asked for or holding svcnat's
// table (held), after the iptables survey: svcnat's chains there too
// refuse Auto (which set is live?) and an explicit nftables while
// nftables holds nothing, and are named for a warning otherwise.
func openNFTables(o Options, held []string) (backend.Kernel, Detection, error) {
	sv, err := iptables.Survey(o.NetNS, o.Prefix)
	if err != nil && !errors.Is(err, iptables.ErrBothBackends) {
		return nil, Detection{}, fmt.Errorf("choosing the backend: %w", err)
	}
	var inIPTables []string
	var other backend.Name
	for _, b := range []backend.Name{iptables.NFT, iptables.Legacy} {
		if owned := sv.OtherOwned(otherIPTables(b)); len(owned) > 0 {
			inIPTables = append(inIPTables, owned...)
			if other == "" {
				other = b
			}
		}
	}
	auto := o.Backend == "" || o.Backend == Auto
	switch {
	case len(inIPTables) > 0 && auto:
		return nil, Detection{}, fmt.Errorf("%w: nftables has %s, iptables has %s; remove one set or choose --backend",
			ErrBothBackends, strings.Join(held, ", "), strings.Join(inIPTables, ", "))
	case len(inIPTables) > 0 && len(held) == 0 && o.Migrate && len(sv.NFT.Owned)*len(sv.Legacy.Owned) == 0:
		return migrateTo(o, NFTables, other, "svcnat's chains are in the "+string(other)+" backend")
	case len(inIPTables) > 0 && len(held) == 0:
		return nil, Detection{}, &otherBackendError{fmt.Sprintf("--backend nftables, but svcnat's chains are in the %s backend (%s); nothing was changed",
			other, strings.Join(inIPTables, ", "))}
	}
	k, err := nftables.New(nftables.Options{NetNS: o.NetNS, Prefix: o.Prefix})
	if err != nil {
		return nil, Detection{}, err
	}
	reason := "--backend nftables"
	if auto {
		reason = "svcnat's table is in nftables (" + strings.Join(held, ", ") + ")"
	}
	return k, Detection{Reason: reason, Other: other, OtherOwned: inIPTables}, nil
}

// migrateTo opens backend to, asked for with Options.Migrate, and the
// backend from that holds svcnat's rules (why says how the survey found
// them), as Detection.From: apply moves the rules in one step. Both are
// opened in the same namespace, for the same prefix.
func migrateTo(o Options, to, from backend.Name, why string) (backend.Kernel, Detection, error) {
	open := func(name backend.Name) (backend.Kernel, error) {
		if name == NFTables {
			return nftables.New(nftables.Options{NetNS: o.NetNS, Prefix: o.Prefix})
		}
		return iptables.New(iptables.Options{Backend: name, NetNS: o.NetNS, ChainPrefix: o.Prefix})
	}
	k, err := open(to)
	if err != nil {
		return nil, Detection{}, err
	}
	f, err := open(from)
	if err != nil {
		return nil, Detection{}, fmt.Errorf("opening the %s backend, which holds svcnat's rules: %w", from, err)
	}
	return k, Detection{Reason: fmt.Sprintf("--backend %s; %s: apply moves them", to, why), From: f}, nil
}

// otherBackendError is Open refusing an explicit backend while svcnat's
// rules are in nftables and the other way round; it matches
// ErrOtherBackend, whose own words are iptables'.
type otherBackendError struct{ msg string }

func (e *otherBackendError) Error() string { return e.msg }
func (e *otherBackendError) Unwrap() error { return ErrOtherBackend }

// otherIPTables is the iptables backend other than b, whose OtherOwned
// are b's chains.
func otherIPTables(b backend.Name) backend.Name {
	if b == iptables.NFT {
		return iptables.Legacy
	}
	return iptables.NFT
}

// Offline is a kernel of backend name that holds nothing and touches no
// host: the backend's fake. Tools that need a backend's transactions as it
// writes them, and its limits, without its kernel (svcnat-bench's
// restore floor) take it.
func Offline(name backend.Name) backend.Kernel {
	if name.Canonical() == NFTables {
		return nftables.NewFake("")
	}
	k := iptables.NewFake()
	k.SetBackend(iptables.Backend(name))
	return k
}
