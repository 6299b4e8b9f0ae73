package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/conntrack"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/probe"
	"github.com/svcnat/svcnat/internal/state"
)

// Apply makes the owned live rules what cfg, rendered for this host as
// node, says: under the lock it plans, shows the plan (Hooks.Planned),
// refuses it for any reason applyRefusal gives (an apply awaiting
// confirmation, a chain prefix other than the recorded one: a
// *PrefixChangedError, live chains of the prefix another state directory
// wrote or this one cannot prove it wrote: an *OwnerError or an
// *UnrecordedError unless Adopt, a blocked plan, a dump), asks
// (Hooks.Approve), and
// commits it (see commit). ApplyRefusal tells the same before an apply.
func (e *Engine) Apply(ctx context.Context, cfg *config.Config, node string) (*Result, error) {
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		p, live, err := e.plan(cfg, node)
		if err != nil {
			return err
		}
		if err := e.noteAdopting(d, st, p); err != nil {
			return err
		}
		refusal := e.applyRefusal(d, st, p)
		e.planned(Planned{Op: OpApply, Plan: p, Refusal: refusal})
		if refusal != nil {
			return refusal
		}
		res, err = e.commit(ctx, OpApply, d, st, p, live, ConfigDigest(cfg), false)
		return err
	})
	return res, err
}

// ApplySaved applies a saved plan exactly, without asking: it was reviewed
// when it was made. It refuses a plan whose chain prefix svcnat may not
// own, one made for another backend, what Apply refuses (applyRefusal; a
// prefix other than the recorded one as a *PlanPrefixError), desired
// rules svcnat could not have written (the backend's CheckDesired), and a
// stale plan, made against other live rules (*StaleError). A destroy plan
// (plan -destroy) is committed as Destroy commits it, with its refusals
// (see destroySaved).
func (e *Engine) ApplySaved(ctx context.Context, p *planner.Plan, configDigest string) (*Result, error) {
	// A plan file is data anyone can write: its prefix decides which
	// chains svcnat treats as its own, so it gets the configuration's
	// checks, and must be the prefix svcnat applied here before.
	if !config.ValidChainPrefix(p.Prefix) {
		return nil, &PlanUnusableError{fmt.Errorf("the plan's chain prefix %q is not one svcnat may own", p.Prefix)}
	}
	if name := e.Kernel.Name(); name != p.Backend {
		return nil, &PlanBackendError{Plan: p.Backend, Host: name}
	}
	// Its desired rules too: the digest of a plan file stops an edit
	// only by whoever does not recompute it (see CheckDesired).
	if err := e.Pure().CheckDesired(p.Prefix, p.Desired); err != nil {
		return nil, &PlanUnusableError{err}
	}
	if p.Destroy {
		return e.destroySaved(ctx, p)
	}
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		if err := e.savedPlanFirst(OpApply, d, st, p); err != nil {
			return err
		}
		live, err := e.savedLive(p)
		if err != nil {
			return err
		}
		// The rest of what Apply refuses (chains svcnat did not record,
		// a blocked deletion), now that savedLive found the live rules to
		// be the plan's snapshot: checked against a snapshot the live
		// rules left behind, a plan made before a destroy or rollback
		// would read as taking chains nobody recorded instead of stale.
		if err := savedPlanRefusal(e.applyRefusal(d, st, p)); err != nil {
			return err
		}
		e.planned(Planned{Op: OpApply, Plan: p})
		res, err = e.commit(ctx, OpApply, d, st, p, live, configDigest, true)
		return err
	})
	return res, err
}

// savedPlanFirst is what refuses a saved plan before the live rules are
// read: another namespace's state directory, an apply awaiting
// confirmation, a prefix other than the recorded one. (What the plan does
// to the live rules is refused once savedLive has read them.)
func (e *Engine) savedPlanFirst(op Op, d *state.Dir, st *state.State, p *planner.Plan) error {
	if e.Kernel.ReadOnly() {
		return nil
	}
	if err := e.namespaceRefusal(op, d, st); err != nil {
		return err
	}
	if err := refusePending(op, d, st); err != nil {
		return err
	}
	if st.Prefix != "" && st.Prefix != p.Prefix {
		return &PlanPrefixError{Plan: p.Prefix, Recorded: st.Prefix}
	}
	return nil
}

// savedLive reads the live rules a saved plan p is committed against,
// under the lock, for ApplySaved and destroySaved: a plan made against
// other live rules is refused (*StaleError), and p gets the foreign rules
// that pin its deletions (Blocked), which a saved plan, holding only owned
// rules, cannot carry.
func (e *Engine) savedLive(p *planner.Plan) (map[backend.Family]*backend.Ruleset, error) {
	// A destroy plan wants nothing, and must see every table it removes
	// chains from (see saveLive).
	want := p.Desired
	if p.Destroy {
		want = nil
	}
	live, err := e.saveLive(want)
	if err != nil {
		return nil, err
	}
	now := planner.New(p.Prefix, p.Backend, p.Desired, live)
	if now.Fingerprint != p.Fingerprint {
		// What changed since the plan was made reads as a plan from
		// its snapshot to the live rules.
		return nil, &StaleError{Since: planner.New(p.Prefix, p.Backend, live, p.Live)}
	}
	p.Blocked = now.Blocked
	return live, nil
}

// Rollback returns the chains of prefix to the generation recorded before
// the current one, and records that as a new generation (so a second
// rollback returns to where the first started). Without two generations
// it fails with state.ErrNoPrevious. It is RollbackTo the previous one.
func (e *Engine) Rollback(ctx context.Context, prefix string) (*Result, error) {
	return e.RollbackTo(ctx, prefix, 0)
}

// RollbackTo returns the chains of prefix to generation gen (0: the one
// before the current one) and records that as a new generation: it plans
// like any apply (Hooks.Planned), asks (Hooks.Approve) and commits. A
// generation the state directory does not keep, or the current one, is
// refused with a *GenerationGoneError listing the kept ones. Like every
// command that changes rules it refuses a state directory of another
// network namespace (*NamespaceError), and live chains of prefix it cannot
// prove its state directory wrote (ownershipRefusal), unless Adopt.
func (e *Engine) RollbackTo(ctx context.Context, prefix string, gen int64) (*Result, error) {
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		if err := refusePending(OpRollback, d, st); err != nil {
			return err
		}
		if err := e.namespaceRefusal(OpRollback, d, st); err != nil {
			return err
		}
		to, err := rollbackTarget(d, st, gen)
		if err != nil {
			return err
		}
		if b := to.Backend.Canonical(); kernel.Pure(b) != nil && (b == kernel.NFTables) != (e.Kernel.Name() == kernel.NFTables) {
			// A generation of another backend (before a migration) is
			// that backend's rules, which this one cannot write.
			return &CrossBackendRollbackError{Generation: to.Generation, Recorded: b, Current: e.Kernel.Name()}
		}
		desired, err := generationRules(d, st, to.Generation)
		if err != nil {
			return err
		}
		live, err := e.saveLive(desired)
		if err != nil {
			return err
		}
		p := planner.New(prefix, e.Kernel.Name(), desired, live)
		if err := e.noteAdopting(d, st, p); err != nil {
			return err
		}
		refusal := e.ownershipRefusal(OpRollback, d, st, p)
		e.planned(Planned{Op: OpRollback, Plan: p, Rollback: &RollbackFromTo{From: st.Generation, To: to}, Refusal: refusal})
		if refusal != nil {
			return refusal
		}
		res, err = e.commit(ctx, OpRollback, d, st, p, live, to.ConfigDigest, false)
		return err
	})
	return res, err
}

// Destroy removes every chain of prefix and svcnat's jumps into them, and
// then the tables svcnat's applies created that hold nothing else (see
// removeCreatedTables); nothing else. On a backend other than the one the
// state directory records (a second set, left in the other backend), it
// removes that set only and keeps the record, which describes the set
// that stays (see destroyUnrecorded). It refuses what destroyRefusal
// refuses, as plan -destroy and a saved destroy plan do: among them a
// state directory of another network namespace, and live chains of prefix
// it cannot prove its state directory wrote, or that another state
// directory wrote last here (ownershipRefusal): with no state at all,
// every chain of prefix is someone else's until Adopt says otherwise.
func (e *Engine) Destroy(ctx context.Context, prefix string) (*Result, error) {
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		live, err := e.saveLive(nil)
		if err != nil {
			return err
		}
		p := planner.New(prefix, e.Kernel.Name(), nil, live)
		if err := e.noteAdopting(d, st, p); err != nil {
			return err
		}
		refusal := e.destroyRefusal(d, st, p)
		e.planned(Planned{Op: OpDestroy, Plan: p, Refusal: refusal})
		if refusal != nil {
			return refusal
		}
		res, err = e.destroyCommit(ctx, d, st, p, live, false)
		return err
	})
	return res, err
}

// withLock takes the network namespace's lock and the state lock (see
// lock), bounded by LockTimeout and by ctx, and loads the state, settling
// a pending apply a reboot ended. A held lock fails with a
// *NamespaceLockError or a *state.LockError, which match ErrLocked.
func (e *Engine) withLock(ctx context.Context, fn func(*state.Dir, *state.State) error) error {
	return e.withLockFor(ctx, e.LockTimeout, fn)
}

func (e *Engine) withLockFor(ctx context.Context, timeout time.Duration, fn func(*state.Dir, *state.State) error) error {
	return e.withLocks(ctx, timeout, true, fn)
}

// withStateLock is withLock without the network namespace's lock, for
// what changes no rule (confirm, Pending): a run of another state
// directory in the namespace, waiting at its prompt, never blocks it.
func (e *Engine) withStateLock(ctx context.Context, fn func(*state.Dir, *state.State) error) error {
	return e.withLocks(ctx, e.LockTimeout, false, fn)
}

func (e *Engine) withLocks(ctx context.Context, timeout time.Duration, namespace bool, fn func(*state.Dir, *state.State) error) error {
	d, err := state.Open(e.StateDir)
	if err != nil {
		return err
	}
	var unlock func()
	if namespace {
		unlock, err = e.lock(ctx, d, timeout)
	} else {
		var l *state.Lock
		if l, err = d.Lock(ctx, timeout); err == nil {
			unlock = func() { l.Unlock() }
		}
	}
	if err != nil {
		return err
	}
	defer unlock()
	st, err := d.Load()
	if err != nil {
		return err
	}
	if err := e.settleReboot(d, st); err != nil {
		return err
	}
	return fn(d, st)
}

// lock takes, in this order, the lock of the network namespace the rules
// are in (one svcnat at a time changes a namespace's rules, whatever its
// state directory; none without a RuntimeDir) and the state lock of d,
// each bounded by timeout and ctx; unlock releases both.
func (e *Engine) lock(ctx context.Context, d *state.Dir, timeout time.Duration) (unlock func(), err error) {
	var ns *nsLock
	if e.namespaceLocked() {
		if ns, err = e.lockNamespace(ctx, timeout); err != nil {
			return nil, err
		}
	}
	lock, err := d.Lock(ctx, timeout)
	if err != nil {
		if ns != nil {
			ns.unlock()
		}
		return nil, err
	}
	e.held = ns
	return func() {
		e.held = nil
		lock.Unlock()
		if ns != nil {
			ns.unlock()
		}
	}, nil
}

// commit runs one apply of p, made from live under the lock: it refuses
// what every command refuses (commitRefusal: a blocked plan, a dump),
// records an empty plan only when the record is behind the rules, asks
// unless approved, commits and verifies (the applier rolls back on any
// failure or on ctx ending), deletes the conntrack entries of removed UDP
// endpoints, and records the new generation.
//
// It records too which state directory wrote the chains in this network
// namespace last (see noteOwner), and, before the transactions, which
// chains it creates (see noteIntent).
func (e *Engine) commit(ctx context.Context, op Op, d *state.Dir, st *state.State, p *planner.Plan, live map[backend.Family]*backend.Ruleset, digest string, approved bool) (*Result, error) {
	res, err := e.commitRules(ctx, op, d, st, p, live, digest, approved)
	if err != nil {
		return res, err
	}
	return res, e.noteOwner(p.Prefix, !blank(p))
}

func (e *Engine) commitRules(ctx context.Context, op Op, d *state.Dir, st *state.State, p *planner.Plan, live map[backend.Family]*backend.Ruleset, digest string, approved bool) (*Result, error) {
	res := &Result{Op: op, Plan: p, StateDir: d.Path()}
	if err := e.commitRefusal(op, p); err != nil {
		return res, err
	}
	if e.Adopt {
		// Before anything is noted or recorded: after, they are this
		// state directory's.
		adopted, err := e.adopted(d, st, p)
		if err != nil {
			return res, err
		}
		res.Adopted = adopted
	}
	gens, rulesDigest := generationFiles(p)
	if p.Empty() {
		// The rules are right; the record may not be, when an earlier
		// apply was killed between its commit and writing the state.
		if !(st.Generation == 0 && blank(p)) && st.RulesDigest != rulesDigest {
			res.Repaired = true
			e.recordNamespace(st)
			if err := e.record(d, st, p, gens, rulesDigest, digest, e.madeBy(op, approved, true), res); err != nil {
				return res, err
			}
			return res, clearIntent(d)
		}
		return res, nil
	}
	if err := e.ask(ctx, op, p, approved); err != nil {
		return res, err
	}
	if err := e.noteCreatedTables(d, p.Desired, live); err != nil {
		return res, err
	}
	noted, err := noteIntent(d, p.Desired, p.Live)
	if err != nil {
		return res, err
	}
	armed := op == OpApply && e.Confirmation != nil
	var pendingID string
	if armed {
		if err := e.arm(d, st, p, digest, rulesDigest); err != nil {
			return res, err
		}
		pendingID = st.Pending.ID
	}
	if err := e.applyPlan(ctx, p, live, res); err != nil {
		if ae := (*applier.Error)(nil); !errors.As(err, &ae) || ae.RolledBack {
			// The rules are the old ones: nothing to revert, and the
			// chains it noted are gone; so are the tables it made.
			e.giveBackNewTables(p.Desired, live)
			return res, fmt.Errorf("%s failed: %w", op, forgetIntent(d, noted, disarmAfter(d, st, err)))
		}
		return res, fmt.Errorf("%s failed: %w", op, err)
	}
	if op == OpApply && len(e.Probes) > 0 {
		if perr := probe.Run(ctx, e.NetNS, e.Probes, e.ProbeTimeout); perr != nil {
			err := applier.Undo(e.Kernel, p, live, perr)
			if ae := (*applier.Error)(nil); errors.As(err, &ae) && ae.RolledBack {
				err = forgetIntent(d, noted, e.probeFailed(d, st, digest, rulesDigest, perr, err))
			}
			return res, fmt.Errorf("%s failed: %w", op, err)
		}
		res.Probed = len(e.Probes)
	}
	if armed {
		if res.Probed > 0 { // the probes confirm it
			st.Pending, res.ProbeConfirmed = nil, true
		} else {
			st.Pending.Status, st.Pending.Generation = state.PendingAwaiting, st.Generation+1
			st.Pending.Deadline = time.Now().Add(e.Confirmation.Timeout)
			pd := *st.Pending
			res.Pending = &pd
		}
	}
	// UDP has no connection to end: entries DNATed to endpoints that are
	// gone would keep clients talking to them.
	if flows := staleFlows(p); len(flows) > 0 && e.Conntrack != nil {
		res.Conntrack.Flows, res.Conntrack.Err = e.Conntrack.Delete(flows)
	}
	e.recordNamespace(st)
	if err := e.record(d, st, p, gens, rulesDigest, digest, e.madeBy(op, approved, false), res); err != nil {
		if armed {
			// The state file still holds the pending apply as being
			// applied: its watcher reverts it once this run lets go of
			// the lock, as it does any apply that stops before its record.
			return res, fmt.Errorf("%w; the watcher of apply %s reverts them", err, pendingID)
		}
		return res, err
	}
	return res, clearIntent(d)
}

// ask is how every commit starts: it stops when ctx has ended, and asks
// (Hooks.Approve) unless the plan was approved before.
func (e *Engine) ask(ctx context.Context, op Op, p *planner.Plan, approved bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s interrupted before the commit (%v); nothing was changed", op, context.Cause(ctx))
	}
	if approved || e.Hooks.Approve == nil {
		return nil
	}
	ok, err := e.Hooks.Approve(ctx, p)
	if err != nil {
		return err
	}
	if !ok {
		return cancelledError{op}
	}
	return nil
}

// applyPlan makes the live rules what p wants, with the batches this
// backend takes (or Batch): the applier commits, verifies, and rolls
// back on any failure or on ctx ending. res records that it applied and
// how long that took.
func (e *Engine) applyPlan(ctx context.Context, p *planner.Plan, live map[backend.Family]*backend.Ruleset, res *Result) error {
	start := time.Now()
	opts := applier.Options{Batch: e.Batch, ListLimit: e.Kernel.Limits().ListLimit, Step: e.stepper(res)}
	if err := applier.Apply(ctx, e.Kernel, p, live, opts); err != nil {
		return err
	}
	res.Applied, res.Took = true, time.Since(start)
	return nil
}

// staleFlows turns the backend's stale UDP flows of p into conntrack's
// terms.
func staleFlows(p *planner.Plan) []conntrack.Flow {
	var out []conntrack.Flow
	for _, f := range kernel.Pure(p.Backend).StaleUDP(p.Planned()) {
		fl := conntrack.Flow{Protocol: "udp", OrigDst: f.VIP, OrigPort: f.Port, DNAT: f.Endpoint}
		if !f.VIP.IsValid() {
			fl.OrigPort = f.NodePort
		}
		out = append(out, fl)
	}
	return out
}

// blank reports whether the plan wants no rules at all (destroy), so that
// destroying nothing on a host svcnat never applied to records nothing.
func blank(p *planner.Plan) bool {
	for _, rs := range p.Desired {
		if rs.RuleCount() > 0 {
			return false
		}
	}
	return true
}

// generationFiles returns the desired owned rules per family, as the
// state records them, and their digest. The files are written as they are
// made: at 10,000 services each is 25 MB.
func generationFiles(p *planner.Plan) (map[string]io.WriterTo, string) {
	gens := map[string]io.WriterTo{}
	var sections []state.Section
	for _, f := range backend.Families {
		gens[f.Key()] = text{p.Desired[f]}
		sections = append(sections, state.Section{Name: f.Key(), Write: p.Desired[f].WriteText})
	}
	digest, _ := state.SectionsDigest("", sections...) // writing to a hash never fails
	return gens, digest
}

// text is a ruleset's Text, for writing to a file (io.WriterTo).
type text struct{ rs *backend.Ruleset }

func (t text) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := t.rs.WriteText(cw)
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// record commits the next generation to the state directory, made by by
// (state.GenerationInfo.MadeBy). The namespace it records is the caller's
// to set (recordNamespace): a reboot's settling applies nothing here.
func (e *Engine) record(d *state.Dir, st *state.State, p *planner.Plan, gens map[string]io.WriterTo, rulesDigest, digest, by string, res *Result) error {
	gen := st.Generation + 1
	st.Generation = gen
	st.ConfigDigest = digest
	st.RulesDigest = rulesDigest
	st.Backend = p.Backend
	st.Prefix = ownedPrefix(p)
	st.AppliedAt = time.Now().UTC()
	st.MadeBy = by
	st.Adopted = len(res.Adopted)
	st.MigratedFrom = p.MovesFrom
	if blank(p) {
		st.Namespace = nil // nothing is owned: any namespace may come next
	}
	if err := commitState(d, st, gens); err != nil {
		return fmt.Errorf("the rules are applied but recording generation %d failed: %w", gen, err)
	}
	res.Generation = gen
	return nil
}

// ownedPrefix is the chain prefix a state that recorded p owns: none
// once destroyed, so that any prefix may come next.
func ownedPrefix(p *planner.Plan) string {
	if blank(p) {
		return ""
	}
	return p.Prefix
}

// The state directory's writes, as variables so that tests can make them
// fail as a full disk does.
var (
	saveState   = (*state.Dir).Save
	commitState = (*state.Dir).Commit
)

// generationRules reads the owned rules recorded for generation gen of
// st. A generation is the files its record names (every family, written
// even when it has no rules) holding what its rules digest says: a file
// that is missing, unreadable or not what was written is an error naming
// it, never "no rules", which a rollback or revert would apply by
// removing every owned chain.
func generationRules(d *state.Dir, st *state.State, gen int64) (map[backend.Family]*backend.Ruleset, error) {
	info, ok := st.Info(gen)
	if !ok {
		return nil, &GenerationError{StateDir: d.Path(), Generation: gen,
			Err: fmt.Errorf("generation %d is not recorded in %s", gen, filepath.Join(d.Path(), "state.json"))}
	}
	// The digest is generationFiles's, over the files as written.
	data := map[backend.Family][]byte{}
	var sections []state.Section
	for _, f := range backend.Families {
		if slices.Contains(info.Rules, f.Key()) {
			b, err := d.ReadGeneration(gen, f.Key())
			if err != nil {
				return nil, &GenerationError{StateDir: d.Path(), Generation: gen, Err: err}
			}
			data[f] = b
		}
		sections = append(sections, state.Section{Name: f.Key(), Write: func(w io.Writer) error {
			_, err := w.Write(data[f])
			return err
		}})
	}
	if digest, _ := state.SectionsDigest("", sections...); info.RulesDigest != "" && digest != info.RulesDigest {
		return nil, &GenerationError{StateDir: d.Path(), Generation: gen,
			Err: fmt.Errorf("the files of generation %d in %s are not the rules recorded (their digest is %s, the record says %s)",
				gen, filepath.Join(d.Path(), "generations"), digest, info.RulesDigest)}
	}
	out := map[backend.Family]*backend.Ruleset{}
	for f, b := range data {
		pure := kernel.Pure(info.Backend)
		if pure == nil {
			return nil, &GenerationError{StateDir: d.Path(), Generation: gen, Err: fmt.Errorf("generation %d was recorded by the %q backend, which this svcnat does not have", gen, info.Backend)}
		}
		rs, err := pure.Parse(f, bytes.NewReader(b))
		if err != nil {
			return nil, &GenerationError{StateDir: d.Path(), Generation: gen, Err: fmt.Errorf("generation %d %s rules: %w", gen, f, err)}
		}
		out[f] = rs
	}
	return out, nil
}

// GenerationError is a recorded generation whose rules cannot be had:
// its files are missing, unreadable, or not the rules recorded. Nothing
// was changed.
type GenerationError struct {
	StateDir   string
	Generation int64
	Err        error
}

func (e *GenerationError) Error() string { return e.Err.Error() + "; nothing was changed" }

func (e *GenerationError) Unwrap() error { return e.Err }

// Hint says how to get the rules back.
func (e *GenerationError) Hint() string {
	return fmt.Sprintf("restore %s from a backup of the state directory, or apply the configuration you want with svcnat apply",
		filepath.Join(e.StateDir, "generations"))
}
