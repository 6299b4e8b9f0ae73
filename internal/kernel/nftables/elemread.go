package nftables

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

var _ backend.ElementReader = (*Runner)(nil)

// ReadElements implements backend.ElementReader: each element's key is
// asked of the kernel alone (a non-dump NFT_MSG_GETSETELEM, what `nft get
// element` sends), which at 10,000 services costs well under a
// millisecond where ReadChain's dump of the whole map cost 70-400 ms. The
// key is encoded from its text by the set's declaration remembered for
// its handles (remember), the inverse of elementDecoder, and the answer
// decoded by it. ok is false, for ReadChain to answer, when the set is
// missing or dynamic, its declaration not remembered, a key or an answer
// beyond elementDecoder, more than maxByKey keys, or the ruleset changed
// during the read.
func (r *Runner) ReadElements(fam backend.Family, table, set string, elems []backend.Rule) ([]backend.Rule, bool, error) {
	tf := tableFamily(fam)
	var present []backend.Rule
	ok := false
	err := netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		before, err := generation(nl)
		if err != nil {
			return err
		}
		ta, err := objects(nl, unix.NFT_MSG_GETTABLE, byte(tf), false,
			netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: []byte(table + "\x00")})
		if errors.Is(err, unix.ENOENT) {
			return nil
		} else if err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		tableAttr := netlink.Attribute{Type: unix.NFTA_SET_TABLE, Data: []byte(table + "\x00")}
		setAttr := netlink.Attribute{Type: unix.NFTA_SET_NAME, Data: []byte(set + "\x00")}
		sa, err := objects(nl, unix.NFT_MSG_GETSET, byte(tf), false, tableAttr, setAttr)
		if errors.Is(err, unix.ENOENT) {
			return nil
		} else if err != nil {
			return fmt.Errorf("set %s: %w", set, err)
		}
		if u32(sa[0][unix.NFTA_SET_FLAGS])&(unix.NFT_SET_ANONYMOUS|unix.NFT_SET_EVAL) != 0 {
			return nil
		}
		text, known := r.recall(fam, table, set, u64(ta[0][nftaTableHandle]), setIdentity(sa[0]))
		if !known {
			return nil
		}
		d, known := newElementDecoder(text)
		if !known {
			return nil
		}
		asked := map[string]bool{}
		var keys [][]byte
		for _, e := range elems {
			keyText, _ := backend.SplitNFTElement(e.Text())
			if asked[keyText] {
				continue
			}
			asked[keyText] = true
			key, known := d.encodeKey(keyText)
			if !known {
				return nil
			}
			keys = append(keys, key)
		}
		if len(keys) > maxByKey {
			return nil
		}
		got, err := getElements(nl, byte(tf), tableAttr, setAttr, keys)
		if err != nil {
			return fmt.Errorf("the elements of %s: %w", set, err)
		}
		found := make([]backend.Rule, 0, len(got))
		for _, el := range got {
			text, known := d.text(el)
			if !known {
				return nil
			}
			found = append(found, backend.NFTElementOf(set, text))
		}
		after, err := generation(nl)
		if err != nil || after != before {
			return err
		}
		backend.SortElements(found)
		present, ok = found, true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("reading %s %s %s by key over netlink: %w", fam, table, set, err)
	}
	return present, ok, nil
}

// maxByKey is the most keys ReadElements asks for: a key costs 50-75 µs
// (at 10,000 services, 1,000 keys of vip-endpoints-tcp 55-75 ms), an
// element of the whole set's dump 7-20 µs (its 34,000 0.3 s), and the
// set's size is not known before it is read: beyond it ReadChain reads the
// whole set, which is then at worst a few times slower.
const maxByKey = 1000

// getBatch is how many keys one request asks for: the kernel answers
// each found element with a message of its own (nlmsg_new(NLMSG_GOODSIZE)),
// which must fit in the socket's receive buffer (208 KiB by default)
// until they are read.
const getBatch = 16

// getElements asks the kernel for the elements of keys in the set named
// by tableAttr and setAttr, getBatch keys a request, and returns those
// it has. The kernel (nf_tables_getsetelem) answers a request's keys in
// order, each found element in a message, and stops at the first key it
// has not with ENOENT: the next request starts after that key. A request
// costs a round trip of 0.1 ms, where the kernel's answers to one
// already sent are read at once.
func getElements(nl *netlink.Conn, family byte, tableAttr, setAttr netlink.Attribute, keys [][]byte) ([]gnft.SetElement, error) {
	var found []gnft.SetElement
	for len(keys) > 0 {
		batch := keys[:min(getBatch, len(keys))]
		list := make([]netlink.Attribute, 0, len(batch))
		for _, key := range batch {
			value, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: key}})
			if err != nil {
				return nil, err
			}
			elem, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: value}})
			if err != nil {
				return nil, err
			}
			list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: elem})
		}
		elems, err := netlink.MarshalAttributes(list)
		if err != nil {
			return nil, err
		}
		data, err := netlink.MarshalAttributes([]netlink.Attribute{tableAttr, setAttr,
			{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: elems}})
		if err != nil {
			return nil, err
		}
		req, err := nl.Send(netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
				Flags: netlink.Request | netlink.Acknowledge,
			},
			Data: append([]byte{family, unix.NFNETLINK_V0, 0, 0}, data...),
		})
		if err != nil {
			return nil, err
		}
		answered, done := 0, false
		for !done {
			msgs, err := nl.Receive()
			switch {
			case errors.Is(err, unix.ENOENT):
				answered++ // the key the kernel has not
				done = true
				continue
			case err != nil:
				return nil, err
			}
			for _, m := range msgs {
				switch {
				case m.Header.Sequence != req.Header.Sequence:
					return nil, fmt.Errorf("the kernel answered sequence %d to %d", m.Header.Sequence, req.Header.Sequence)
				case m.Header.Type == netlink.Error:
					done = true // the acknowledgement: every key was answered
				case answered == len(batch):
					return nil, fmt.Errorf("the kernel answered more than the %d keys asked", len(batch))
				default:
					e, err := answer(m)
					if err != nil {
						return nil, err
					}
					if !bytes.Equal(e.Key, batch[answered]) {
						return nil, fmt.Errorf("the kernel answered key %x to %x", e.Key, batch[answered])
					}
					found = append(found, e)
					answered++
				}
			}
		}
		if answered == 0 {
			return nil, errors.New("the kernel answered no key")
		}
		keys = keys[min(answered, len(batch)):]
	}
	return found, nil
}

// answer is the one element of the kernel's answer to a key.
func answer(m netlink.Message) (gnft.SetElement, error) {
	var e gnft.SetElement
	if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM) || len(m.Data) < 4 {
		return e, fmt.Errorf("the kernel answered message type %d", m.Header.Type)
	}
	attrs, err := netlink.UnmarshalAttributes(m.Data[4:])
	if err != nil {
		return e, err
	}
	n := 0
	for _, a := range attrs {
		if a.Type&^unix.NLA_F_NESTED != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(a.Data)
		if err != nil {
			return e, err
		}
		for ad.Next() {
			if ad.Type()&^unix.NLA_F_NESTED != unix.NFTA_LIST_ELEM {
				return e, fmt.Errorf("the kernel answered attribute %d", ad.Type())
			}
			n++
			if e, err = decodeElement(ad.Bytes()); err != nil {
				return e, err
			}
		}
		if err := ad.Err(); err != nil {
			return e, err
		}
	}
	if n != 1 {
		return e, fmt.Errorf("the kernel answered %d elements", n)
	}
	return e, nil
}

// decodeElement reads one NFTA_LIST_ELEM's attributes as google/nftables
// reads a dumped element (SetElement.decode), so that elementDecoder sees
// the same element either way; an expression (a counter) is not read, and
// the element is marked with a Counter so that elementDecoder refuses it,
// as it refuses a dumped element's counter.
func decodeElement(b []byte) (gnft.SetElement, error) {
	var e gnft.SetElement
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return e, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() &^ unix.NLA_F_NESTED {
		case unix.NFTA_SET_ELEM_KEY:
			e.Key, err = dataValue(ad.Bytes())
		case gnft.NFTA_SET_ELEM_KEY_END:
			e.KeyEnd, err = dataValue(ad.Bytes())
		case unix.NFTA_SET_ELEM_DATA:
			e.Val, err = dataValue(ad.Bytes())
		case unix.NFTA_SET_ELEM_FLAGS:
			e.IntervalEnd = ad.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_TIMEOUT:
			e.Timeout = time.Millisecond * time.Duration(ad.Uint64())
		case unix.NFTA_SET_ELEM_EXPIRATION:
			e.Expires = time.Millisecond * time.Duration(ad.Uint64())
		case unix.NFTA_SET_ELEM_USERDATA:
			if comment, ok := userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT); ok {
				e.Comment = comment
			}
		case unix.NFTA_SET_ELEM_EXPR, gnft.NFTA_SET_ELEM_EXPRESSIONS:
			e.Counter = &expr.Counter{}
		}
		if err != nil {
			return e, err
		}
	}
	return e, ad.Err()
}

// dataValue is the payload of a key's or data's nested attribute: the
// NFTA_DATA_VALUE bytes, or a verdict's NFTA_DATA_VERDICT attributes, as
// google/nftables hands either over (decodeElement there).
func dataValue(b []byte) ([]byte, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	var v []byte
	for ad.Next() {
		switch ad.Type() &^ unix.NLA_F_NESTED {
		case unix.NFTA_DATA_VALUE, unix.NFTA_DATA_VERDICT:
			v = ad.Bytes()
		}
	}
	return v, ad.Err()
}

// encodeKey encodes a key's text, as the model holds it ("10.0.0.1 . tcp . 80"),
// into the kernel's bytes: the inverse of appendFields, which must give
// the text back from them (ok is false otherwise, and for what
// appendFields refuses: a protocol by number, an IPv4-mapped IPv6
// address, an address or number not written as nft writes it).
func (d elementDecoder) encodeKey(text string) ([]byte, bool) {
	fields := strings.Split(text, " . ")
	if len(fields) != len(d.key) {
		return nil, false
	}
	concat := len(d.key) > 1
	var out []byte
	for i, k := range d.key {
		s := fields[i]
		var v []byte
		switch k {
		case fieldIPv4, fieldIPv6:
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" || (k == fieldIPv4) != a.Is4() {
				return nil, false
			}
			v = a.AsSlice()
		case fieldProto:
			n, ok := protocolNumber(s)
			if !ok {
				return nil, false
			}
			v = []byte{n}
		case fieldPort:
			n, err := strconv.ParseUint(s, 10, 16)
			if err != nil {
				return nil, false
			}
			v = binary.BigEndian.AppendUint16(nil, uint16(n))
		case fieldNumgen:
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, false
			}
			v = binary.NativeEndian.AppendUint32(nil, uint32(n))
		default:
			return nil, false
		}
		out = append(out, v...)
		if concat {
			out = append(out, make([]byte, (len(v)+3)&^3-len(v))...)
		}
	}
	var back strings.Builder
	if !appendFields(&back, d.key, out) || back.String() != text {
		return nil, false
	}
	return out, true
}

// protocolNumber is the inet_proto whose name protocolName gives.
func protocolNumber(name string) (byte, bool) {
	protocolsOnce.Do(readProtocols)
	for n, s := range protocols {
		if s == name {
			return n, true
		}
	}
	return 0, false
}
