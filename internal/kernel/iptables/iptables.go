// Package iptables is svcnat's iptables backend, the first implementation
// of backend.Kernel: it reads a family's rules (iptables-save, or one chain
// with iptables -S), writes a transaction as an iptables-restore --noflush
// payload and runs it, through a runner that execs the binaries of one
// iptables backend (nft or legacy) found on PATH, optionally inside a
// named network namespace. It also holds the survey that chooses between
// the nft and legacy backends (used by internal/kernel), a read-only Dump
// of saved rules, and a Fake that behaves like the kernel for tests. It
// never decides which rules to write: that is the renderer's
// (internal/kernel/iptables/render) and the planner's job.
// go-iptables has no save or restore, so the runner execs the binaries
// itself and keeps their stderr.
package iptables

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Interface is the iptables backend: a backend.Kernel whose transactions
// are iptables-restore --noflush payloads, plus the two iptables-level
// calls its own tests and TestFakeAgreesWithKernel use to compare the Fake
// with the real backends. The real runner, Dump and Fake implement it.
// Implementations are safe for concurrent use.
type Interface interface {
	backend.Kernel
	// Save reads every table of fam as iptables-save prints it: Read with
	// nothing to be like.
	Save(fam backend.Family) (*backend.Ruleset, error)
	// Restore feeds payload to iptables-restore. flags must include
	// NoFlushTables. A rejected payload gives a *backend.TxError naming
	// the failing line. Tables are committed one at a time, at their
	// COMMIT line: tables before a failing one stay applied.
	Restore(fam backend.Family, payload []byte, flags RestoreFlags) error
}

// Backend is an iptables backend's name: the nf_tables based one or the
// legacy x_tables one. Rules written through one are invisible to the
// other.
type Backend = backend.Name

// The backends. Auto is only a choice in Options: Open resolves it with
// Survey, and Name never returns it. File is what a Dump reports: rules
// read from a saved iptables-save dump.
const (
	NFT    Backend = "iptables-nft"
	Legacy Backend = "iptables-legacy"
	Auto   Backend = "auto"
	File   Backend = "file"
)

// restoreTool is the program a *backend.TxError names.
const restoreTool = "iptables-restore"

// ParseBackend reads a --backend value: auto, iptables-nft or
// iptables-legacy, or their old names nft and legacy ("" is auto).
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s).Canonical(); b {
	case "", Auto:
		return Auto, nil
	case NFT, Legacy:
		return b, nil
	}
	return "", fmt.Errorf("unknown iptables backend %q (want auto, iptables-nft or iptables-legacy)", s)
}

// limits are backend b's, with binaries of version v. nf_tables
// transactions are super-linear in the chains they create (10,000
// services x 5 in one: 250 s; in batches of 1,000: 7 s). Legacy
// iptables-restore replaces a whole table per transaction, so each batch
// rewrites everything before it (the same rules staged: 96 s; in one
// transaction: 4 s): it is not staged. At 10,000 services a single-chain
// read costs about a hundredth of a full save on nft, and a third of one
// on legacy, which reads the whole table anyway.
func limits(b Backend, v Version) backend.Limits {
	l := backend.Limits{Batch: 1000, ListLimit: 64, RandomFully: v.HasRandomFully()}
	if b == Legacy {
		l.Batch, l.ListLimit = backend.NoStaging, 2
	}
	return l
}

// versionMode is the mode `iptables -V` prints for backend b.
func versionMode(b Backend) string {
	if b == Legacy {
		return "legacy"
	}
	return "nf_tables"
}

// RestoreFlags selects iptables-restore options. Flags are typed so that
// call sites read as what they do: Restore(fam, p, NoFlushTables).
type RestoreFlags uint8

const (
	// NoFlushTables passes --noflush: chains the payload does not declare
	// are left alone. It is required: svcnat owns no whole table, and a
	// restore without it would flush Docker's, firewalld's and the
	// operator's rules. Restore refuses flags without it (ErrFlushRefused).
	NoFlushTables RestoreFlags = 1 << iota
	// RestoreCounters passes --counters: "[packets:bytes]" prefixes in
	// the payload set the rules' counters.
	RestoreCounters
)

// Options configures New.
type Options struct {
	// Backend is Auto (Open's survey decides), NFT or Legacy.
	Backend Backend
	// NetNS is a network namespace name as `ip netns` makes them
	// (/var/run/netns/NAME), or an absolute path to a namespace file; ""
	// runs in the caller's namespace.
	NetNS string
	// Wait bounds how long iptables-restore waits for the xtables lock
	// (-w, whole seconds, rounded up). Zero means DefaultWait; it is
	// clamped to [1s, MaxWait].
	Wait time.Duration
	// ChainPrefix is svcnat's chain prefix: chains named PREFIX-... decide
	// and constrain Open's choice of backend (see Open and Survey).
	ChainPrefix string
}

// Bounds of Options.Wait.
const (
	DefaultWait = 5 * time.Second
	MaxWait     = 5 * time.Minute
)

// waitSeconds turns Options.Wait into the -w argument.
func waitSeconds(d time.Duration) int {
	switch {
	case d <= 0:
		d = DefaultWait
	case d > MaxWait:
		d = MaxWait
	}
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// Version is an iptables version as `iptables -V` prints it.
type Version struct {
	Major, Minor, Patch int
	// Mode is "nf_tables" or "legacy".
	Mode string
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d (%s)", v.Major, v.Minor, v.Patch, v.Mode)
}

// AtLeast reports whether v is major.minor.patch or later.
func (v Version) AtLeast(major, minor, patch int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

// HasRandomFully reports whether MASQUERADE accepts --random-fully
// (iptables 1.6.2 and later, the rule go-iptables and kube-proxy use).
func (v Version) HasRandomFully() bool { return v.AtLeast(1, 6, 2) }

// restoreHasWait reports whether iptables-restore takes -w (1.6.2 and
// later). Older ones do not take the xtables lock at all.
func (v Version) restoreHasWait() bool { return v.AtLeast(1, 6, 2) }

var versionRE = regexp.MustCompile(`v([0-9]+)\.([0-9]+)\.([0-9]+)(?:\s+\(([a-z_]+)\))?`)

// ParseVersion reads the output of `iptables -V` (or of any iptables
// binary's -V), such as "iptables-restore v1.8.9 (nf_tables)". A version
// without a mode is legacy, as iptables before 1.8 only had that backend.
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("no iptables version in %q", s)
	}
	v := Version{Mode: m[4]}
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	if v.Mode == "" {
		v.Mode = "legacy"
	}
	return v, nil
}
