// Package backend is the seam between svcnat and a kernel rule backend:
// the types and interfaces a backend implements, and the pure part every
// backend shares. It holds no backend: the iptables one lives under
// internal/kernel/iptables, and internal/kernel is the one place that
// chooses and opens one. The engine, the applier and the daemon work
// through a Kernel and never learn which backend it is.
//
// A backend reads what is there (a whole family, or one named chain), runs
// a Transaction, a value built before it runs, and reports a refused one
// as a *TxError naming the failing line. Turning a plan's chain changes
// into staged transactions and a final one is the same for every backend
// (Transactions); writing one in the backend's own language is not
// (Kernel.Write).
//
// The rule model (Family, Ruleset, Rule) still lives in
// the iptables backend's rules package; it is to move here.
package backend
