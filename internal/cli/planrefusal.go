package cli

import "fmt"

// The cli's own refusals of a saved plan (apply PLANFILE), typed so that
// engineErrors gives them their reason and hint, with --json and without.

// planUnusableError refuses a file that is a saved plan, but not as svcnat
// made it (changed after it was made, corrupt, of another format): only
// making it again helps.
type planUnusableError struct {
	file string
	err  error
	hint string
}

func (e *planUnusableError) Error() string {
	return fmt.Sprintf("%s: %v; nothing was changed", e.file, e.err)
}
func (e *planUnusableError) Unwrap() error { return e.err }

// Hint says what to do, wherever the error is printed (Run prints it).
func (e *planUnusableError) Hint() string { return e.hint }

// alreadyAppliedError refuses a saved plan whose changes the live rules
// already hold: it was applied before (this plan, or one like it).
type alreadyAppliedError struct {
	file string
	hint string // how to see what would change now (plan, or plan -destroy)
}

func (e *alreadyAppliedError) Error() string {
	return fmt.Sprintf("%s: the plan was already applied: the live rules are the ones it wants; nothing was changed", e.file)
}

// stalePlanError refuses a saved plan made against live rules that have
// changed since (engine.StaleError, which it unwraps to).
type stalePlanError struct {
	file string
	err  error
	hint string // how to make the plan again (plan, or plan -destroy)
}

func (e *stalePlanError) Error() string {
	return fmt.Sprintf("stale plan %s: nothing was changed", e.file)
}
func (e *stalePlanError) Unwrap() error { return e.err }
