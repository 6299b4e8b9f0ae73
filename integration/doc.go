// Package integration holds svcnat's real-kernel tests (in its _test
// files): each builds network namespaces of its own, runs the real svcnat
// binary against them, sends real TCP and UDP through the applied rules
// where it tests traffic, and removes everything again, also on failure.
// They skip when not root and never touch the machine's own namespace.
// netlab builds their topologies; cmd/labecho serves `make demo`.
package integration
