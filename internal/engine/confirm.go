package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// ConfirmOptions make an apply pending (apply --confirm-timeout): its rules
// stay only if confirmed within Timeout of the commit, else they are
// reverted to the previous generation.
//
// The deadline is held by a watcher, a process of its own that Watch
// starts before anything changes (cli starts `svcnat confirm-watch`
// through package detach: a transient systemd unit, or a process in a
// session of its own), and that runs Engine.Watch. It reverts when the
// deadline passes unconfirmed, and also when the apply process ended
// before its rules were verified: killing the apply, or cutting the
// session it ran in, does not keep unconfirmed rules.
type ConfirmOptions struct {
	Timeout time.Duration
	// Watch starts the watcher for the pending apply id and says how it
	// runs ("systemd unit X", "process N").
	Watch func(id string) (string, error)
}

// ErrNothingPending is matched by the error Confirm and Revert return
// when no apply awaits confirmation (a *NotPendingError).
var ErrNothingPending = errors.New("no apply awaits confirmation")

// NotPendingError says that no apply awaits confirmation, and, when the
// last thing recorded was a revert, which generation it reverted: a
// confirm that came too late learns that its rules are gone.
type NotPendingError struct {
	// Reverted is the reverted generation's record (its Reverted says
	// why), RevertedAt when that was; nil when the last record is no
	// revert.
	Reverted   *state.GenerationInfo
	RevertedAt time.Time
}

func (e *NotPendingError) Error() string {
	switch r := e.Reverted; {
	case r != nil && r.Generation == 0:
		return fmt.Sprintf("%v: an apply was undone at %s (%s)", ErrNothingPending, state.When(e.RevertedAt), r.Reverted)
	case r != nil:
		return fmt.Sprintf("%v: generation %d was reverted at %s (%s)", ErrNothingPending, r.Generation, state.When(e.RevertedAt), r.Reverted)
	}
	return ErrNothingPending.Error()
}

func (e *NotPendingError) Is(target error) bool { return target == ErrNothingPending }

// notPending says that nothing is pending, and what was last undone: the
// state's Undone, or in a state file written before it, the generation
// the last one reverted.
func notPending(st *state.State) error {
	e := &NotPendingError{}
	if u := st.Undone; u != nil {
		info, ok := st.Info(u.Generation)
		if !ok || u.Generation == 0 {
			info = state.GenerationInfo{Generation: u.Generation}
		}
		info.ConfigDigest, info.RulesDigest, info.Reverted = u.ConfigDigest, u.RulesDigest, u.Reason
		e.Reverted, e.RevertedAt = &info, u.At
		return e
	}
	if n := len(st.Generations); n > 0 {
		if last := st.Generations[n-1]; last.RevertOf != 0 {
			info, ok := st.Info(last.RevertOf)
			if !ok {
				info = state.GenerationInfo{Generation: last.RevertOf}
			}
			e.Reverted, e.RevertedAt = &info, last.AppliedAt
		}
	}
	return e
}

// PendingApply is an apply awaiting confirmation, and whether its
// watcher still runs.
type PendingApply struct {
	state.Pending
	// Watched: the watcher process holds the deadline. When it is gone
	// (killed; a reboot settles the apply on its own), nothing reverts the
	// apply: svcnat confirm or svcnat revert must settle it.
	Watched bool
}

// PendingError refuses a command while an apply awaits confirmation: one
// pending apply at a time.
type PendingError struct {
	Op      Op
	Pending PendingApply
}

func (e *PendingError) Error() string {
	p := e.Pending
	switch {
	case p.Status == state.PendingApplying && p.Watched:
		return fmt.Sprintf("apply %s (a confirm-timeout apply) stopped before its rules were recorded and is being reverted; %s refused; nothing was changed", p.ID, e.Op)
	case p.Status == state.PendingApplying:
		return fmt.Sprintf("apply %s (a confirm-timeout apply) stopped before its rules were recorded, and its watcher is gone; %s refused; nothing was changed", p.ID, e.Op)
	case !p.Watched:
		return fmt.Sprintf("apply %s (generation %d) awaits confirmation (deadline %s), but its watcher is gone and will not revert it; %s refused; nothing was changed",
			p.ID, p.Generation, state.When(p.Deadline), e.Op)
	}
	return fmt.Sprintf("apply %s (generation %d) awaits confirmation until %s; %s refused; nothing was changed",
		p.ID, p.Generation, state.When(p.Deadline), e.Op)
}

// OpRevert is a pending apply's rules returned to the previous generation.
const OpRevert Op = "revert"

// refusePending refuses op while an apply is pending.
func refusePending(op Op, d *state.Dir, st *state.State) error {
	if st.Pending != nil {
		return &PendingError{Op: op, Pending: pendingApply(d, st)}
	}
	return nil
}

func pendingApply(d *state.Dir, st *state.State) PendingApply {
	return PendingApply{Pending: *st.Pending, Watched: d.Held(watcherLock(st.Pending.ID))}
}

// watcherLock names the lock a pending apply's watcher holds while it
// runs (state.Dir.Hold).
func watcherLock(id string) string { return "watch-" + id }

// watchRetry is how long a watcher waits before it tries a failed revert
// again (a var for tests).
var watchRetry = 5 * time.Second

// watcherStart bounds the wait for a watcher to take its lock (a var for
// tests).
var watcherStart = 10 * time.Second

// arm records a pending apply and starts its watcher, before the commit:
// from then on, an apply that does not finish is reverted. When it fails,
// nothing has changed, and it removes the pending record again: a record
// left behind would refuse every later command.
//
// The record names the configuration and the rules (digest, rulesDigest)
// too: a revert of an apply that stops before it records its generation
// still says what it undid.
func (e *Engine) arm(d *state.Dir, st *state.State, p *planner.Plan, digest, rulesDigest string) error {
	id := make([]byte, 3)
	rand.Read(id)
	st.Pending = &state.Pending{
		ID: hex.EncodeToString(id), Status: state.PendingApplying, Previous: st.Generation,
		Timeout: e.Confirmation.Timeout, BootID: bootID(), Prefix: p.Prefix, Backend: p.Backend,
		ConfigDigest: digest, RulesDigest: rulesDigest,
	}
	if err := saveState(d, st); err != nil {
		// The write is atomic: the state file is what it was.
		st.Pending = nil
		return fmt.Errorf("recording the pending apply: %w; nothing was changed", err)
	}
	how, err := e.Confirmation.Watch(st.Pending.ID)
	if err == nil {
		err = awaitHeld(d, watcherLock(st.Pending.ID), how)
	}
	if err != nil {
		err = fmt.Errorf("starting the watcher that reverts an unconfirmed apply: %w", err)
	} else {
		st.Pending.Watcher = how
		if err = saveState(d, st); err == nil {
			return nil
		}
		// The watcher runs: it finds no pending apply of its id once
		// the record is gone, and ends.
		err = fmt.Errorf("recording the pending apply's watcher: %w", err)
	}
	pd := st.Pending
	if derr := disarm(d, st); derr != nil {
		return fmt.Errorf("%w; nothing was changed, but %w: svcnat revert %s clears it once the state directory can be written", err, derr, pd.ID)
	}
	return fmt.Errorf("%w; nothing was changed", err)
}

// awaitHeld waits for the watcher to hold its lock: only then does
// something hold the deadline.
func awaitHeld(d *state.Dir, name, how string) error {
	for deadline := time.Now().Add(watcherStart); !d.Held(name); {
		if time.Now().After(deadline) {
			return fmt.Errorf("the watcher (%s) did not start within %s", how, watcherStart)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// disarm drops the pending apply of a commit that did not happen (it
// failed and was rolled back): there is nothing to revert. When the state
// cannot be written, the record stays in memory too, as it is on disk.
func disarm(d *state.Dir, st *state.State) error {
	pd := st.Pending
	if pd == nil {
		return nil
	}
	st.Pending = nil
	if err := saveState(d, st); err != nil {
		st.Pending = pd
		return fmt.Errorf("removing the record of pending apply %s failed: %w", pd.ID, err)
	}
	return nil
}

// disarmAfter disarms after a commit that failed with err and was rolled
// back, and adds to err when the pending record stays: its watcher, which
// runs, removes it when it finds the old rules in place.
func disarmAfter(d *state.Dir, st *state.State, err error) error {
	id := ""
	if st.Pending != nil {
		id = st.Pending.ID
	}
	if derr := disarm(d, st); derr != nil {
		return fmt.Errorf("%w; %w (its watcher removes it once the state directory can be written; until then commands are refused naming apply %s)", err, derr, id)
	}
	return err
}

// Confirm keeps the pending apply's rules: id, when given, must name it.
// It returns what was pending. It changes no rule, so it takes the state
// lock alone: another state directory's run in the namespace (at its
// prompt, holding the namespace's lock) never blocks a confirm.
func (e *Engine) Confirm(ctx context.Context, id string) (*state.Pending, error) {
	var pd *state.Pending
	err := e.withStateLock(ctx, func(d *state.Dir, st *state.State) error {
		pd = st.Pending
		switch {
		case pd == nil:
			return notPending(st)
		case id != "" && id != pd.ID:
			return fmt.Errorf("the pending apply is %s, not %s; nothing was confirmed", pd.ID, id)
		case pd.Status == state.PendingApplying:
			return fmt.Errorf("apply %s is still being applied; confirm it once its rules are in", pd.ID)
		}
		st.Pending = nil
		return saveState(d, st)
	})
	return pd, err
}

// Revert returns the pending apply's rules to the previous generation now,
// for reason (it was declined at the prompt); id, when given, must name it.
func (e *Engine) Revert(ctx context.Context, id, reason string) (*Result, error) {
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		pd := st.Pending
		switch {
		case pd == nil:
			return notPending(st)
		case id != "" && id != pd.ID:
			return fmt.Errorf("the pending apply is %s, not %s; nothing was reverted", pd.ID, id)
		}
		var err error
		res, err = e.revert(ctx, d, st, reason)
		return err
	})
	return res, err
}

// Watch holds the deadline of pending apply id, as the watcher process:
// it waits for the apply to end (the state lock), then for the deadline,
// and reverts unless the apply was confirmed or settled otherwise. A
// revert that fails is tried again a few times.
func (e *Engine) Watch(ctx context.Context, id string) (*Result, error) {
	d, err := state.Open(e.StateDir)
	if err != nil {
		return nil, err
	}
	hold, err := d.Hold(watcherLock(id))
	if errors.Is(err, state.ErrLocked) {
		return nil, nil // another watcher holds this deadline
	} else if err != nil {
		return nil, err
	}
	defer hold.Drop()
	failures := 0
	for {
		var res *Result
		var wait time.Duration
		done := false
		err := e.withLockFor(ctx, 24*time.Hour, func(d *state.Dir, st *state.State) error {
			pd := st.Pending
			var reason string
			switch {
			case pd == nil || pd.ID != id:
				done = true // confirmed, reverted, or a reboot settled it
				return nil
			case pd.Status == state.PendingApplying:
				// The apply holds the lock until its rules are verified
				// and recorded: it ended before that.
				reason = "the apply stopped before its rules were verified and recorded"
			case !time.Now().Before(pd.Deadline):
				reason = fmt.Sprintf("not confirmed within %s", pd.Timeout)
			default:
				// Wake before the deadline too, to end soon after a confirm.
				wait = min(time.Until(pd.Deadline), time.Second)
				return nil
			}
			r, err := e.revert(ctx, d, st, reason)
			res, done = r, err == nil
			return err
		})
		switch {
		case done:
			return res, nil
		case err != nil:
			if ctx.Err() != nil {
				return nil, err
			}
			if failures++; failures >= 10 {
				return nil, fmt.Errorf("the revert failed %d times, the last time: %w; the rules of apply %s stay until svcnat confirm or svcnat revert settles it", failures, err, id)
			}
			wait = watchRetry
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// revert returns the owned chains to the pending apply's previous
// generation (none: every owned chain goes), verified like any apply, and
// records that as a new generation that says why; the reverted generation
// is marked too.
func (e *Engine) revert(ctx context.Context, d *state.Dir, st *state.State, reason string) (*Result, error) {
	pd := *st.Pending
	if err := e.namespaceRefusal(OpRevert, d, st); err != nil {
		return nil, err
	}
	desired, digest, err := previous(d, st, pd)
	if err != nil {
		return nil, err
	}
	live, err := e.saveLive(desired)
	if err != nil {
		return nil, err
	}
	p := planner.New(pd.Prefix, e.Kernel.Name(), desired, live)
	refusal := e.ownershipRefusal(OpRevert, d, st, p)
	e.planned(Planned{Op: OpRevert, Plan: p, Refusal: refusal})
	if refusal != nil {
		return nil, refusal
	}
	st.Pending = nil
	st.RecordRevert(undone(pd, reason))
	res, err := e.commit(ctx, OpRevert, d, st, p, live, digest, true)
	if err != nil {
		return res, err
	}
	if res.Generation == 0 { // the rules were the previous ones already
		if err := saveState(d, st); err != nil {
			return res, err
		}
	}
	res.Reverted = &pd
	res.Reason = reason
	return res, nil
}

// settleReboot settles a pending apply whose watcher a reboot ended: the
// previous generation is recorded as current again (its rules are not
// applied: after a reboot the kernel holds whatever the boot restored, and
// the next apply converges).
func (e *Engine) settleReboot(d *state.Dir, st *state.State) error {
	if !rebootEnded(st.Pending) {
		return nil
	}
	p, digest, err := rebootPlan(d, st)
	if err != nil {
		return err
	}
	pd := *st.Pending
	st.Pending = nil
	st.RecordRevert(undone(pd, "the host rebooted before the apply was confirmed"))
	gens, rulesDigest := generationFiles(p)
	return e.record(d, st, p, gens, rulesDigest, digest, MadeByRevert, &Result{})
}

// undone describes the pending apply pd, undone now for reason.
func undone(pd state.Pending, reason string) state.Undone {
	return state.Undone{Generation: pd.Generation, ConfigDigest: pd.ConfigDigest, RulesDigest: pd.RulesDigest,
		Reason: reason, At: time.Now().UTC()}
}

// rebootEnded reports whether pd is a pending apply of an earlier boot.
func rebootEnded(pd *state.Pending) bool {
	return pd != nil && pd.BootID != "" && pd.BootID != bootID()
}

// rebootPlan is what settleReboot records: the rules of the generation the
// pending apply returns to, and its configuration digest.
func rebootPlan(d *state.Dir, st *state.State) (*planner.Plan, string, error) {
	pd := st.Pending
	desired, digest, err := previous(d, st, *pd)
	if err != nil {
		return nil, "", err
	}
	return planner.New(pd.Prefix, pd.Backend, desired, nil), digest, nil
}

// previous returns the rules and configuration digest of the generation
// a pending apply returns to; no rules at all when it was the first.
func previous(d *state.Dir, st *state.State, pd state.Pending) (map[backend.Family]*backend.Ruleset, string, error) {
	if pd.Previous == 0 {
		return map[backend.Family]*backend.Ruleset{}, "", nil
	}
	desired, err := generationRules(d, st, pd.Previous)
	if err != nil {
		return nil, "", err
	}
	info, _ := st.Info(pd.Previous)
	return desired, info.ConfigDigest, nil
}

// bootID is the kernel's boot_id: it changes with every boot.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
