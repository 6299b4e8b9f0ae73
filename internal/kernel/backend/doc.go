// Package backend is the seam between svcnat and a kernel rule backend:
// the types and interfaces a backend implements, and the object model
// every backend shares. It holds no backend: the iptables one lives under
// internal/kernel/iptables, and internal/kernel is the one place that
// chooses and opens one. The engine, the applier and the daemon work
// through a Kernel and never learn which backend it is.
//
// A backend reads what is there (a whole family, or one named chain), runs
// a Transaction, a value built before it runs, and reports a refused one
// as a *TxError naming the failing line. Turning a plan's chain changes
// into staged transactions and a final one (Kernel.Transactions: which
// order a kernel loads and reads back fastest) and writing one in the
// backend's own language (Kernel.Write) are the backend's; both are pure.
//
// The object model is here too (model.go): an IP family's tables of
// chains and their rules, each rule a chain and its argument tokens in
// canonical form, what svcnat owns of them by its prefix (Owned, Foreign)
// and their text form, which generations and saved plans keep (Text). A
// desired and a live ruleset are the same type and compare as values, so
// the planner diffs objects whatever the backend. Lines print in
// iptables-save syntax, the one syntax svcnat's backends share so far;
// the nftables backend brings sets and maps and its own syntax.
//
// The pure part of a backend touches no kernel (Pure): Renderer renders
// the service model into objects and reads their text form back;
// Describer says what objects mean for services (the views, UDP
// conntrack cleanup, a saved plan's check); Tracer follows a packet
// through objects and draws their graph (trace.go holds its question and
// result types, which the views print).
package backend
