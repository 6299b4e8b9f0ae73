package reconcile

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/metrics"
)

// netnsIdentity identifies the network namespace name names now (an `ip
// netns` name, or a path to a namespace file): its nsfs device and inode,
// which a namespace deleted and made again under the same name does not
// keep. A name whose file is not (yet) a namespace — gone, or made but
// not mounted yet — is an error.
func netnsIdentity(name string) (string, error) {
	var h netns.NsHandle
	var err error
	if strings.Contains(name, "/") {
		h, err = netns.GetFromPath(name)
	} else {
		h, err = netns.GetFromName(name)
	}
	if err != nil {
		return "", fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	defer h.Close()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(h), &fs); err != nil {
		return "", fmt.Errorf("network namespace %s: %w", name, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return "", fmt.Errorf("network namespace %s: not a namespace file", name)
	}
	return h.UniqueId(), nil
}

// followNetNS, at the start of every pass, compares the identity of the
// namespace NetNS names with the one the listeners were opened in. The
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
