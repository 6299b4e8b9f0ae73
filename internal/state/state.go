package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// FormatVersion is the version of the state file this package writes. Load
// refuses a newer one rather than misreading it and losing generations.
const FormatVersion = 1

// DefaultKeep is how many generations Commit keeps.
const DefaultKeep = 10

// ErrNoPrevious is returned by [State.Previous] when there is no earlier
// generation to roll back to.
var ErrNoPrevious = errors.New("no previous generation to roll back to")

// State is the content of <dir>/state.json: the current generation and the
// generations still kept on disk.
type State struct {
	Version      int          `json:"version"`
	Generation   int64        `json:"generation"`
	ConfigDigest string       `json:"config_digest,omitempty"`
	RulesDigest  string       `json:"rules_digest,omitempty"`
	Backend      backend.Name `json:"backend,omitempty"`
	// Prefix is the chain prefix of the applied rules, so that rollback,
	// destroy and show know what svcnat owns without the configuration.
	Prefix    string    `json:"prefix,omitempty"`
	AppliedAt time.Time `json:"applied_at"`
	// MadeBy says what recorded the current generation (see
	// GenerationInfo.MadeBy).
	MadeBy string `json:"made_by,omitempty"`
	// Adopted counts the chains the current generation took over (see
	// GenerationInfo.Adopted).
	Adopted int `json:"adopted,omitempty"`
	// MigratedFrom names the backend the current generation moved
	// svcnat's rules from (see GenerationInfo.MigratedFrom).
	MigratedFrom backend.Name `json:"migrated_from,omitempty"`
	// Namespace is the network namespace whose rules the state directory
	// records, while it owns some (nil after a destroy, and in state
	// files written before svcnat recorded it): another namespace's are
	// not these, and a command there is refused.
	Namespace   *Namespace       `json:"namespace,omitempty"`
	Generations []GenerationInfo `json:"generations,omitempty"`

	revertOf   int64 // see RecordRevert
	keepUndone bool  // the next Commit records a revert: Undone stays
	// Pending is the apply awaiting confirmation (apply --confirm-timeout),
	// if one is.
	Pending *Pending `json:"pending,omitempty"`
	// Undone is the last apply svcnat undid — a pending apply reverted,
	// an apply whose probes failed and were rolled back — as long as
	// nothing but reverts was recorded since: what a daemon must not
	// apply again. Nil otherwise, and in state files written before it
	// (there the Reverted marks of Generations tell it).
	Undone *Undone `json:"undone,omitempty"`
}

// Undone is an apply that svcnat undid. It holds the apply's digests
// itself, so that an apply that recorded no generation of its own (it
// stopped between its commit and its record, or its probes failed) is
// named as well as one that did.
type Undone struct {
	// Generation is the generation the apply recorded, 0 when none.
	Generation   int64  `json:"generation,omitempty"`
	ConfigDigest string `json:"config_digest,omitempty"`
	RulesDigest  string `json:"rules_digest,omitempty"`
	// Reason says why it was undone ("not confirmed within 1m0s",
	// "rolled back: probe tcp://10.96.0.20:5432 failed ..."); At when.
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Pending is an apply whose rules stay only if confirmed in time. A
// watcher process holds its deadline; see the engine.
type Pending struct {
	// ID names the apply, for svcnat confirm ID.
	ID string `json:"id"`
	// Status is PendingApplying until the rules are committed and
	// verified, then PendingAwaiting until confirmed or reverted.
	Status string `json:"status"`
	// Generation is the generation the apply recorded (once awaiting),
	// Previous the one a revert returns to (0: none, a revert removes
	// every owned chain).
	Generation int64 `json:"generation,omitempty"`
	Previous   int64 `json:"previous"`
	// Timeout is how long after the commit the rules wait for a
	// confirmation; Deadline when that ends (once awaiting).
	Timeout  time.Duration `json:"timeout"`
	Deadline time.Time     `json:"deadline,omitzero"`
	// BootID is the kernel's boot_id when the apply began: after a reboot
	// the watcher is gone, and the pending apply counts as reverted.
	BootID string `json:"boot_id,omitempty"`
	// Watcher says how the deadline is held ("systemd unit X", "process N").
	Watcher string `json:"watcher,omitempty"`
	// Prefix and Backend are the apply's, for the watcher: a first apply
	// has recorded neither yet.
	Prefix  string       `json:"prefix"`
	Backend backend.Name `json:"backend"`
	// ConfigDigest and RulesDigest name what the apply applies, known
	// before its generation is: a revert of an apply that stopped before
	// its record still says what it undid (Undone).
	ConfigDigest string `json:"config_digest,omitempty"`
	RulesDigest  string `json:"rules_digest,omitempty"`
}

// The statuses of a pending apply.
const (
	PendingApplying = "applying"
	PendingAwaiting = "awaiting"
)

// GenerationInfo records one applied generation, oldest first in
// State.Generations. Rules names the families that have a rules file for
// it. (Older svcnat recorded "backups" too; reading such a file ignores
// them.)
type GenerationInfo struct {
	Generation   int64        `json:"generation"`
	ConfigDigest string       `json:"config_digest,omitempty"`
	RulesDigest  string       `json:"rules_digest,omitempty"`
	Backend      backend.Name `json:"backend,omitempty"`
	AppliedAt    time.Time    `json:"applied_at"`
	Rules        []string     `json:"rules,omitempty"`
	// Reverted says why this generation's rules were reverted (an apply
	// not confirmed in time); RevertOf, on the generation the revert
	// recorded, names the generation it reverted.
	Reverted string `json:"reverted,omitempty"`
	RevertOf int64  `json:"revert_of,omitempty"`
	// MadeBy says what recorded the generation: "apply", "saved_plan",
	// "rollback", "revert", "reconcile", "repair" (an apply that found the
	// rules right but the record behind) or "destroy"; "" in state files
	// written before svcnat recorded it.
	MadeBy string `json:"made_by,omitempty"`
	// Adopted counts the live chains the command that recorded the
	// generation took over with --adopt (chains no generation of this
	// state directory had); 0 when it took none.
	Adopted int `json:"adopted,omitempty"`
	// MigratedFrom names, for a generation recorded by an apply that
	// moved svcnat's rules from another backend to Backend, that backend;
	// "" for every other generation.
	MigratedFrom backend.Name `json:"migrated_from,omitempty"`
}

// Namespace names a network namespace as the command line names it.
type Namespace struct {
	// Name is --netns's value (a name as ip netns makes them), or
	// without it the ip netns name of the namespace svcnat ran in; ""
	// when ip netns names none (usually the host's own).
	Name string `json:"name"`
}

// Previous returns the generation applied before the current one, the target
// of a rollback. A rollback is committed as a new generation, so rolling back
// twice returns to where it started, as `cd -` does.
func (s *State) Previous() (GenerationInfo, error) {
	for i := len(s.Generations) - 1; i > 0; i-- {
		if s.Generations[i].Generation == s.Generation {
			return s.Generations[i-1], nil
		}
	}
	return GenerationInfo{}, ErrNoPrevious
}

// Dir is an open state directory.
type Dir struct {
	path string
	// Keep is how many generations Commit keeps; Open sets DefaultKeep.
	Keep int
}

// Open opens the state directory at path, creating it (0700: generations
// show the host's firewall) when it does not exist. It refuses, with an
// *UntrustedError, a directory that another user could change: one that
// is a symbolic link, or that it or a directory above it is owned by
// another user or writable by others (see checkPath).
func Open(path string) (*Dir, error) {
	if err := checkPath(path, true); err != nil {
		return nil, err
	}
	return &Dir{path: path, Keep: DefaultKeep}, nil
}

// Exists reports whether a state directory exists at path, without
// creating one as Open does.
func Exists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

func (d *Dir) statePath() string { return filepath.Join(d.path, stateFile) }

const stateFile = "state.json"

// Load reads the state file. A directory that was never applied to gives the
// zero State (generation 0) and no error. A state file svcnat could not have
// written (see check) is refused as corrupt.
func (d *Dir) Load() (*State, error) {
	dir, err := d.openStateDir()
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	b, err := readIn(dir, stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", d.statePath(), err)
	}
	if st.Version > FormatVersion {
		return nil, fmt.Errorf("state file %s has version %d; this svcnat reads up to %d",
			d.statePath(), st.Version, FormatVersion)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt: %w", d.statePath(), err)
	}
	return &st, nil
}

// check refuses generation numbers svcnat never writes: negative ones,
// the largest int64 (its next one would overflow to a negative number and
// every later commit would fail), recorded generations out of order or
// after the current one, and negative numbers of a pending or undone
// apply, or of the file's version.
func (st *State) check() error {
	gen := func(what string, n int64) error {
		if n < 0 || n == math.MaxInt64 {
			return fmt.Errorf("%s is %d", what, n)
		}
		return nil
	}
	errs := []error{gen("the generation", st.Generation)}
	if st.Version < 0 {
		errs = append(errs, fmt.Errorf("the version is %d", st.Version))
	}
	var last int64
	for _, g := range st.Generations {
		errs = append(errs, gen("a recorded generation", g.Generation), gen(fmt.Sprintf("generation %d's revert_of", g.Generation), g.RevertOf))
		switch {
		case g.Generation <= last:
			errs = append(errs, fmt.Errorf("generation %d is recorded after generation %d", g.Generation, last))
		case g.Generation > st.Generation:
			errs = append(errs, fmt.Errorf("generation %d is recorded, but the current generation is %d", g.Generation, st.Generation))
		}
		last = g.Generation
	}
	if pd := st.Pending; pd != nil {
		errs = append(errs, gen("the pending apply's generation", pd.Generation), gen("the pending apply's previous generation", pd.Previous))
		if pd.Timeout < 0 {
			errs = append(errs, fmt.Errorf("the pending apply's timeout is %s", pd.Timeout))
		}
	}
	if u := st.Undone; u != nil {
		errs = append(errs, gen("the undone apply's generation", u.Generation))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// testHook, when set by a test, is called after each step of Commit; an error
// stops Commit there, as a crash would, without any cleanup.
var testHook func(step string) error

func hook(step string) error {
	if testHook == nil {
		return nil
	}
	return testHook(step)
}

// Commit records st as the new current generation, with rules holding the
// owned rules after the apply, keyed by family. st is the loaded state with
// Generation set to the new number (greater than any in st.Generations) and
// the digests, backend and time filled in; Commit appends its GenerationInfo
// to st.Generations and drops all but the last Keep. The caller must hold the
// lock.
//
// The rules files are written first and state.json last: the rename of
// state.json is the commit point. Files no longer referenced (pruned
// generations, leftovers of interrupted applies) are removed afterwards.
func (d *Dir) Commit(st *State, rules map[string]io.WriterTo) error {
	for _, g := range st.Generations {
		if g.Generation >= st.Generation {
			return fmt.Errorf("committing generation %d: generation %d already exists", st.Generation, g.Generation)
		}
	}
	if st.Generation <= 0 || st.Generation == math.MaxInt64 {
		return fmt.Errorf("committing generation %d: generations go from 1 to %d", st.Generation, int64(math.MaxInt64-1))
	}
	info := GenerationInfo{
		Generation:   st.Generation,
		ConfigDigest: st.ConfigDigest,
		RulesDigest:  st.RulesDigest,
		Backend:      st.Backend,
		AppliedAt:    st.AppliedAt,
		RevertOf:     st.revertOf,
		MadeBy:       st.MadeBy,
		Adopted:      st.Adopted,
		MigratedFrom: st.MigratedFrom,
	}
	dir, err := d.openStateDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	gens, err := openSub(dir, "generations", true)
	if err != nil {
		return fmt.Errorf("creating generations directory: %w", err)
	}
	defer gens.Close()
	for _, fam := range sortedKeys(rules) {
		name, err := fileName(st.Generation, fam)
		if err != nil {
			return err
		}
		if err := writeAtomicIn(gens, name, rules[fam], 0o600); err != nil {
			return err
		}
		info.Rules = append(info.Rules, fam)
	}
	if err := hook("generations written"); err != nil {
		return err
	}
	next := *st
	if !st.keepUndone {
		next.Undone = nil // an apply that is no revert: nothing is held
	}
	next.revertOf, next.keepUndone = 0, false
	next.Generations = append(slices.Clone(st.Generations), info)
	if keep := max(d.Keep, 1); len(next.Generations) > keep {
		next.Generations = next.Generations[len(next.Generations)-keep:]
	}
	if err := save(dir, &next); err != nil {
		return err
	}
	*st = next
	if err := hook("state written"); err != nil {
		return err
	}
	// The new state is durable; a failed cleanup only leaves files that the
	// next Commit removes, so it does not make the commit fail.
	d.clean(dir, st)
	return nil
}

// Save writes st as the state without recording a generation: for a
// pending apply's status. The caller must hold the lock.
func (d *Dir) Save(st *State) error {
	dir, err := d.openStateDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	return save(dir, st)
}

func save(dir *os.File, st *State) error {
	st.Version = FormatVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	return writeAtomicIn(dir, stateFile, bytes.NewReader(append(b, '\n')), 0o600)
}

// RecordRevert records that the apply u describes was undone: the next
// Commit (if any) records a generation that reverts u.Generation, which is
// marked as reverted for u.Reason, and st.Undone is u until a Commit that
// is no revert. Digests u lacks are taken from u.Generation's record.
func (st *State) RecordRevert(u Undone) {
	st.revertOf, st.keepUndone = u.Generation, true
	for i := range st.Generations {
		if g := &st.Generations[i]; u.Generation != 0 && g.Generation == u.Generation {
			g.Reverted = u.Reason
			if u.ConfigDigest == "" && u.RulesDigest == "" {
				u.ConfigDigest, u.RulesDigest = g.ConfigDigest, g.RulesDigest
			}
		}
	}
	st.Undone = &u
}

// Info returns the record of generation gen, if it is kept.
func (st *State) Info(gen int64) (GenerationInfo, bool) {
	for _, g := range st.Generations {
		if g.Generation == gen {
			return g, true
		}
	}
	return GenerationInfo{}, false
}

func sortedKeys(m map[string]io.WriterTo) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
