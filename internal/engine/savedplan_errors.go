package engine

import (
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// PlanUnusableError refuses a saved plan that is not one svcnat would
// have made: its chain prefix or its desired rules fail the checks a
// configuration gets (an edit whose digest was recomputed). Nothing was
// changed; only making the plan again helps.
type PlanUnusableError struct{ Err error }

func (e *PlanUnusableError) Error() string { return e.Err.Error() + "; nothing was changed" }
func (e *PlanUnusableError) Unwrap() error { return e.Err }

// PlanBackendError refuses a saved plan made for another iptables
// backend than the one this host uses.
type PlanBackendError struct{ Plan, Host backend.Name }

func (e *PlanBackendError) Error() string {
	return fmt.Sprintf("the plan was made for the %s backend, this host uses %s; nothing was changed", e.Plan, e.Host)
}
