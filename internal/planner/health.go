package planner

import (
	"net/netip"
	"time"
)

// Health is what svcnat reconcile's health view did to a plan: the
// endpoints its checks found down, which the plan renders not ready and
// not serving as the daemon does (health.Overlay), so that a plan beside
// a live reconcile shows no drift for them. The engine fills it (nil when
// no fresh view was read); views say why those endpoints are absent. A
// saved plan keeps it (its JSON form is the plan file's).
type Health struct {
	// File is the view's file; WrittenAt when reconcile (process PID)
	// wrote it, ReadAt when the plan read it.
	File      string    `json:"file,omitempty"`
	WrittenAt time.Time `json:"written_at,omitzero"`
	ReadAt    time.Time `json:"read_at"`
	PID       int       `json:"pid,omitempty"`
	// Down lists the endpoints the view took out, by service and
	// address: those the file has ready or serving, in a service with a
	// health_check, that the checks found down.
	Down []Down `json:"down,omitempty"`
	// Ignored is why the view could not be used (a corrupt file): the
	// plan renders the file's conditions alone, the safe fallback, and
	// says so. Down is empty then.
	Ignored string `json:"ignored,omitempty"`
}

// Down is one endpoint a health check took out of a plan, with what the
// checks last found.
type Down struct {
	Service  string     `json:"service"`
	Endpoint netip.Addr `json:"endpoint"`
	// Since is when it went down; Consecutive the failures in a row
	// since; LastCheck when the last one ended, and LastError why.
	Since       time.Time `json:"since"`
	Consecutive int       `json:"consecutive"`
	LastCheck   time.Time `json:"last_check,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Target is the address and port checked.
	Target string `json:"target,omitempty"`
}
