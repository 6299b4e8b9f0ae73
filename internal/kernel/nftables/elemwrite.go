package nftables

import (
	"errors"
	"fmt"

	gnft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// A cold start — the transaction that creates svcnat's table — commits in
// two transactions: nft -f declares the table's chains, sets and maps and
// writes its rules; then every element goes in one netlink batch
// (google/nftables), encoded by the element decoder's inverse. nft 1.0.6
// spends most of a cold start's time and memory on the elements: at
// 10,000 services × 5 (103,000 elements) one nft -f took 2.2 s and 286 MB,
// the table without its elements 1.0 s and 123 MB, and the elements alone,
// by nft, 1.7 s and 172 MB. Between the two the maps are empty: no
// service is translated yet, which is what the host had before the table
// existed (no rule of it acts without an element — kube-proxy's drop of
// untranslated traffic to the service CIDRs would, but svcnat knows no
// service CIDRs and writes none; in a migration the old set, hooked
// first, still translates). If the batch fails, nft is given the same
// elements (a refused batch commits nothing), which names the element the
// kernel refuses; if that fails too, the apply's rollback removes the
// first transaction, as it does a failed staged apply's. A rollback's own
// transaction (Transaction.Whole) is never split. A small cold start
// takes the same two steps (the second costs a millisecond), so that
// every cold start the tests make runs the path the large ones do.

// coldSet is one set's or map's elements, encoded, and about how many
// bytes of netlink messages they take.
type coldSet struct {
	name  string
	elems []gnft.SetElement
	size  int
}

// coldStart returns the elements of tx, encoded, when tx is a cold start
// whose elements go over netlink: it is not Whole, it creates every
// object it names and holds elements, svcnat's table does not exist
// (asked over netlink, before anything is encoded: a transaction of
// creations alone on a live table, which Run sees on every apply, costs
// that question), and every element is in a set or map whose declaration
// the element decoder knows and is encoded exactly (element). ok is false
// otherwise: tx goes to nft whole.
func (r *Runner) coldStart(tx *backend.Transaction) (sets []coldSet, ok bool, err error) {
	if tx.Whole {
		return nil, false, nil
	}
	n := 0
	for _, c := range tx.Changes {
		if c.Action != backend.Create || c.Table != r.table {
			return nil, false, nil
		}
		if c.Kind != backend.KindChain {
			n += len(c.After)
		}
	}
	if n == 0 {
		return nil, false, nil
	}
	tf := tableFamily(tx.Family)
	err = netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		_, err = objects(nl, unix.NFT_MSG_GETTABLE, byte(tf), false,
			netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: []byte(r.table + "\x00")})
		return err
	})
	switch {
	case err == nil: // the table is there
		return nil, false, nil
	case !errors.Is(err, unix.ENOENT):
		return nil, false, fmt.Errorf("looking for table %s: %w", r.table, err)
	}
	for _, c := range tx.Changes {
		if c.Kind == backend.KindChain || len(c.After) == 0 {
			continue
		}
		d, known := newElementDecoder(c.SpecAfter)
		if !known {
			return nil, false, nil
		}
		s := coldSet{name: c.Chain, elems: make([]gnft.SetElement, len(c.After))}
		for i, r := range c.After {
			e, ok := d.element(r.Text())
			if !ok {
				return nil, false, nil
			}
			s.elems[i], s.size = e, s.size+elementSize(e)
		}
		sets = append(sets, s)
	}
	return sets, true, nil
}

// elementSize is about how many bytes e takes in a netlink message: its
// nested attributes' headers, key, data and comment, rounded up.
func elementSize(e gnft.SetElement) int {
	n := 48 + len(e.Key) + len(e.Val) + len(e.Comment)
	if e.VerdictData != nil {
		n += 32 + len(e.VerdictData.Chain)
	}
	return n
}

// elementsPerMessage is how many bytes of elements one netlink message
// carries: the kernel's attribute lengths are 16 bits, and the list is
// one attribute. A variable for the tests.
var elementsPerMessage = 32 << 10

// addElements adds sets' elements to svcnat's table of fam in one netlink
// batch: one transaction, as one nft -f is.
func (r *Runner) addElements(fam backend.Family, sets []coldSet) error {
	// The messages, each of one set's elements, up to elementsPerMessage
	// bytes of them.
	type message struct {
		set   string
		elems []gnft.SetElement
	}
	var msgs []message
	total := 1 << 16
	for _, s := range sets {
		for start := 0; start < len(s.elems); {
			end, size := start, 0
			for end < len(s.elems) && (end == start || size+elementSize(s.elems[end]) <= elementsPerMessage) {
				size += elementSize(s.elems[end])
				end++
			}
			msgs = append(msgs, message{s.name, s.elems[start:end]})
			total += size + 64
			start = end
		}
	}
	// A batch is one sendmsg(2), which the socket's send buffer must hold
	// whole; and the kernel acknowledges each message of it, which the
	// receive buffer must hold until read (at 30,000 services 900
	// acknowledgements overflowed the default): nft raises both the same
	// way (root may go past wmem_max and rmem_max). CapAcknowledge: an
	// error's acknowledgement does not carry the 32 KiB message it
	// refuses.
	bigger := func(nl *netlink.Conn) error {
		if err := nl.SetOption(netlink.CapAcknowledge, true); err != nil {
			return err
		}
		raw, err := nl.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, total),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20+len(msgs)*4096))
		}); err != nil {
			return err
		}
		return serr
	}
	table := &gnft.Table{Name: r.table, Family: tableFamily(fam)}
	err := netns.Do(r.netns, func() error {
		c, err := gnft.New(gnft.WithSockOptions(bigger))
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := c.SetAddElements(&gnft.Set{Table: table, Name: m.set}, m.elems); err != nil {
				return fmt.Errorf("the elements of %s: %w", m.set, err)
			}
		}
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("adding the %s elements over netlink: %w", fam, err)
	}
	return nil
}

func tableFamily(fam backend.Family) gnft.TableFamily {
	if fam == backend.IPv6 {
		return gnft.TableFamilyIPv6
	}
	return gnft.TableFamilyIPv4
}
