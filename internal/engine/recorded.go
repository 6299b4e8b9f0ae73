package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// Recorded is what the state directory says svcnat last did on this host,
// read without changing anything: what a daemon decides from, and what
// metrics report, so that a restarted process sees what the last one saw.
type Recorded struct {
	// Generation is the current generation (0: none recorded), AppliedAt
	// when it was recorded, ConfigDigest the configuration it came from.
	Generation   int64
	AppliedAt    time.Time
	ConfigDigest string
	// Pending is the apply awaiting confirmation, if one is.
	Pending *state.Pending
	// Backend is the backend the current generation was applied on: the
	// one svcnat's rules are in, which an apply --backend moving them
	// changes.
	Backend backend.Name
	// Reverted, when the last thing recorded undid an apply (one not
	// confirmed in time, declined at the prompt, stopped before it was
	// verified or recorded, ended by a reboot, or rolled back because a
	// probe failed), describes that apply: its ConfigDigest and
	// RulesDigest name what was undone, its Reverted says why, its
	// Generation is the apply's (0 when it recorded none). RevertedAt is
	// when (zero in a state file written before svcnat recorded it). Nil
	// otherwise.
	Reverted   *state.GenerationInfo
	RevertedAt time.Time
}

// RevertedConfig reports whether the last record reverted an apply of the
// configuration with digest: applying it again would undo the revert.
func (r *Recorded) RevertedConfig(digest string) bool {
	return r.Reverted != nil && r.Reverted.ConfigDigest != "" && r.Reverted.ConfigDigest == digest
}

// RevertedRules reports whether the last record reverted an apply of the
// very rules p makes (its Desired): applying p would undo the revert,
// whatever path the reverted apply read its configuration from.
func (r *Recorded) RevertedRules(p *planner.Plan) bool {
	if r.Reverted == nil || r.Reverted.RulesDigest == "" {
		return false
	}
	_, digest := generationFiles(p)
	return digest == r.Reverted.RulesDigest
}

// ReadRecorded reads the record of the state directory at stateDir
// without the lock; a directory that does not exist reads as nothing
// recorded.
func ReadRecorded(stateDir string) (*Recorded, error) {
	st, err := readState(stateDir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = &state.State{}
	}
	return recorded(st), nil
}

// Recorded is ReadRecorded for this engine's state directory, except that
// a pending apply a reboot ended is settled first, under the lock, as
// every command does: a daemon that only reads would wait for it forever.
func (e *Engine) Recorded(ctx context.Context) (*Recorded, error) {
	r, err := ReadRecorded(e.StateDir)
	if err != nil || !rebootEnded(r.Pending) {
		return r, err
	}
	if err := e.withLock(ctx, func(*state.Dir, *state.State) error { return nil }); err != nil {
		return nil, err
	}
	return ReadRecorded(e.StateDir)
}

func recorded(st *state.State) *Recorded {
	r := &Recorded{Generation: st.Generation, AppliedAt: st.AppliedAt, ConfigDigest: st.ConfigDigest, Pending: st.Pending, Backend: st.Backend}
	var np *NotPendingError
	if errors.As(notPending(st), &np) && np.Reverted != nil {
		r.Reverted, r.RevertedAt = np.Reverted, np.RevertedAt
	} else if n := len(st.Generations); n > 0 && st.Generations[n-1].Reverted != "" {
		// A state file from before Undone: a revert that found the
		// previous rules in place recorded no generation of its own,
		// and marked the last one.
		last := st.Generations[n-1]
		r.Reverted = &last
	}
	return r
}

// probeFailed records that the apply of the configuration with digest
// (making the rules with rulesDigest) was rolled back because a probe
// failed (perr), and drops its pending record (see disarmAfter): like a
// revert, it is what a daemon must not apply again. err is the rollback's
// error, returned with what recording adds.
func (e *Engine) probeFailed(d *state.Dir, st *state.State, digest, rulesDigest string, perr, err error) error {
	st.RecordRevert(state.Undone{ConfigDigest: digest, RulesDigest: rulesDigest, Reason: "rolled back: " + perr.Error(), At: time.Now().UTC()})
	if st.Pending != nil {
		return disarmAfter(d, st, err)
	}
	if serr := saveState(d, st); serr != nil {
		return fmt.Errorf("%w; recording the rollback failed: %w", err, serr)
	}
	return err
}
