// Package state holds svcnat's state directory (default /var/lib/svcnat,
// chosen by the caller): the apply lock, the state file that records the
// current generation and the owned rules of each applied generation.
//
// Rules are opaque bytes here, one blob per family ("ipv4", "ipv6"). The
// package never talks to iptables, never parses rules and never decides what
// to apply or roll back; it only makes what the applier decided durable.
//
// Layout:
//
//	<dir>/lock                        flock'ed by the one running apply; holds the holder's pid
//	<dir>/state.json                  the commit point: which generation is current
//	<dir>/generations/<N>.<fam>.rules owned rules after generation N was applied
//
// Every file is written with [WriteFileAtomic], and generation files are
// written before state.json refers to them, so a crash at any point leaves
// either the old or the new state. Files that state.json does not refer to are
// leftovers of an interrupted apply; readers ignore them and [Dir.Commit]
// removes them, and the backups directory older svcnat wrote too.
//
// svcnat runs as root, so the directory must be one no other user can
// change: [Open] refuses it (an [*UntrustedError]) when it is a symbolic
// link, or when it or a directory above it is owned by another user or
// writable by others (a sticky parent such as /tmp excepted). Every file in
// it is opened under the directory's descriptor without following a
// symbolic link, so a link in it is an error, never a way to have root
// write, truncate or read another file.
package state
