package reconcile

import (
	"log/slog"

	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// netnsIdentity identifies the namespace a name names now, as the
// namespace lock does (netns.Identity).
var netnsIdentity = netns.Identity

// followNetNS, at the start of every pass, compares the identity of the
// namespace NetNS names (netns.Identity, which a namespace deleted
// and made again under its name does not keep) with the one the listeners were opened in. The
// rules follow a namespace deleted and made again by themselves (every
// command enters it by name); a socket stays in the namespace it was made
// in, so the listeners would answer no one: it says so (WARN), reopens
// the health-check ports and, through Relisten, the caller's listeners,
// and says when they are all open again (INFO). A Relisten that fails is
// tried again at every pass. A namespace that cannot be read now (deleted,
// not made again yet) changes nothing: the pass fails on it and says so.
func (l *Loop) followNetNS(log *slog.Logger) {
	if l.NetNS == "" {
		return
	}
	id, err := netnsIdentity(l.NetNS)
	if err != nil {
		return
	}
	switch {
	case l.listenNS == "":
		l.listenNS = id // the listeners opened before Run are in it
		return
	case id != l.listenNS:
		log.Warn("network namespace deleted and made again: the listeners are in the deleted one; reopening them", "netns", l.NetNS)
		l.listenNS, l.relistenDue = id, true
		if l.Health != nil {
			// A port that cannot open now is opened by a later Sync.
			if err := l.Health.Reopen(); err != nil {
				log.Error("health check ports", "err", err)
			}
		}
	case !l.relistenDue:
		return
	}
	if l.Relisten != nil {
		if err := l.Relisten(); err != nil {
			l.count((*metrics.Metrics).ReconcileError)
			log.Error("reopening the listeners in the network namespace failed; trying again at the next pass", "netns", l.NetNS, "err", err)
			return
		}
	}
	l.relistenDue = false
	log.Info("listeners reopened in the network namespace", "netns", l.NetNS)
}
