package nftables

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// Reading a chain's rules over netlink.
//
// nft 1.0.6 reads the whole table into its cache before it lists one
// chain: "nft list chain" of one service chain took 1 to 1.5 s at 10,000
// services and 10 s at 30,000, which a health verdict on a service with
// a chain of its own (a node port, an external IP, affinity) paid to
// verify the one rule it rewrote. Over netlink the kernel gives that
// chain's rules alone, in a few milliseconds, as expressions: nlChain
// reads them back into svcnat's words for the few rule shapes svcnat
// writes (servicePattern for service, local and dispatch chains,
// statements for the others), as nft lists them (render.AsListed, which
// TestKernelAgrees holds to the kernel, normalises the text). Every
// attribute of every expression is checked; a rule of any other shape,
// with anything more or other than the shape has, user data other than
// a plain comment, or a ruleset that changed during the read leaves the
// chain to nft's listing, whatever the cost. Read (readSplit) reads the
// whole table so. TestNetlinkChainsAgreeWithListing and
// TestReadSplitAgreesWithListing hold the reads equal to nft's listing on
// every render golden.

// nlExpr is one expression of a rule as the kernel gives it: its name
// and its attributes by type, each once.
type nlExpr struct {
	name  string
	attrs map[uint16][]byte
}

// parseExprs reads a rule's NFTA_RULE_EXPRESSIONS; false for anything
// but a list of named expressions whose attributes are each given once.
func parseExprs(b []byte) ([]nlExpr, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, false
	}
	var out []nlExpr
	for ad.Next() {
		if ad.Type()&^unix.NLA_F_NESTED != unix.NFTA_LIST_ELEM {
			return nil, false
		}
		ed, err := netlink.NewAttributeDecoder(ad.Bytes())
		if err != nil {
			return nil, false
		}
		var e nlExpr
		seen := 0
		for ed.Next() {
			switch ed.Type() &^ unix.NLA_F_NESTED {
			case unix.NFTA_EXPR_NAME:
				e.name = strings.TrimSuffix(string(ed.Bytes()), "\x00")
			case unix.NFTA_EXPR_DATA:
				if e.attrs, err = attrsOnce(ed.Bytes()); err != nil {
					return nil, false
				}
			default:
				return nil, false
			}
			seen++
		}
		if ed.Err() != nil || seen != 2 || e.name == "" || e.attrs == nil {
			return nil, false
		}
		out = append(out, e)
	}
	return out, ad.Err() == nil
}

// attrsOnce reads attributes by type, refusing one given twice.
func attrsOnce(b []byte) (map[uint16][]byte, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	out := map[uint16][]byte{}
	for ad.Next() {
		t := ad.Type() &^ unix.NLA_F_NESTED
		if _, dup := out[t]; dup {
			return nil, fmt.Errorf("attribute %d twice", t)
		}
		out[t] = ad.Bytes()
	}
	return out, ad.Err()
}

// has reports whether e is the expression name with exactly the
// attributes types.
func (e nlExpr) has(name string, types ...uint16) bool {
	if e.name != name || len(e.attrs) != len(types) {
		return false
	}
	for _, t := range types {
		if _, ok := e.attrs[t]; !ok {
			return false
		}
	}
	return true
}

// u32 is attribute t as a big-endian 32-bit number, ok only for 4 bytes.
func (e nlExpr) u32(t uint16) (uint32, bool) {
	b := e.attrs[t]
	if len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// is reports whether attribute t is the 32-bit number want.
func (e nlExpr) is(t uint16, want uint32) bool {
	v, ok := e.u32(t)
	return ok && v == want
}

// str is attribute t as a NUL-terminated string.
func (e nlExpr) str(t uint16) (string, bool) {
	s, ok := strings.CutSuffix(string(e.attrs[t]), "\x00")
	return s, ok && s != "" && !strings.ContainsRune(s, 0)
}

// value is attribute t holding exactly one NFTA_DATA_VALUE, its bytes.
func (e nlExpr) value(t uint16) ([]byte, bool) {
	a, err := attrsOnce(e.attrs[t])
	if err != nil || len(a) != 1 {
		return nil, false
	}
	v, ok := a[unix.NFTA_DATA_VALUE]
	return v, ok
}

// Registers as the kernel gives them back (nft_dump_register): a
// 128-bit register by its number (NFT_REG_1 = 1, …), another 32-bit one
// as NFT_REG32_00 (8) + its index.
const (
	reg1   = unix.NFT_REG_1
	reg2   = unix.NFT_REG_2
	reg32x = unix.NFT_REG32_00
)

// famRegs are the things of a family the shapes depend on: its NFPROTO,
// "ip" or "ip6", its addresses' length and offsets in the network
// header, and the registers nft puts a value after an address in.
type famRegs struct {
	proto          uint32
	ipX            string
	addrLen        uint32
	saddr, daddr   uint32
	afterAddr      uint32 // the register after an address in reg 1
	afterAddrThen  uint32 // the one after that (after 4 more bytes)
	pickProtoReg   uint32 // the endpoint pick's port register (after the address the map gives)
	affinityClient uint32 // the client address after the slot in the affinity key
}

func regsOf(fam backend.Family) famRegs {
	if fam == backend.IPv6 {
		return famRegs{unix.NFPROTO_IPV6, "ip6", 16, 8, 24, reg2, reg32x + 5, reg2, reg32x + 1}
	}
	return famRegs{unix.NFPROTO_IPV4, "ip", 4, 12, 16, reg32x + 1, reg32x + 2, reg32x + 1, reg32x + 1}
}

// ruleDecoder reads one rule's expressions in order.
type ruleDecoder struct {
	f  famRegs
	ex []nlExpr
	i  int
	// anon reads an anonymous set of the rule's table (anonSet); nil:
	// none can be read.
	anon func(name string) (string, bool)
}

func (d *ruleDecoder) next() (nlExpr, bool) {
	if d.i >= len(d.ex) {
		return nlExpr{}, false
	}
	d.i++
	return d.ex[d.i-1], true
}

// l4proto reads "meta l4proto P" (meta load into reg 1, cmp eq): P.
func (d *ruleDecoder) l4proto() (string, bool) {
	m, ok1 := d.next()
	c, ok2 := d.next()
	if !ok1 || !ok2 || !m.has("meta", unix.NFTA_META_DREG, unix.NFTA_META_KEY) ||
		!m.is(unix.NFTA_META_DREG, reg1) || !m.is(unix.NFTA_META_KEY, unix.NFT_META_L4PROTO) {
		return "", false
	}
	v, ok := d.cmpEq(c, reg1)
	if !ok || len(v) != 1 {
		return "", false
	}
	switch p := v[0]; p {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
		return protocolName(p)
	}
	return "", false
}

// cmpEq reads a comparison for equality of register sreg: the value.
func (d *ruleDecoder) cmpEq(c nlExpr, sreg uint32) ([]byte, bool) {
	if !c.has("cmp", unix.NFTA_CMP_SREG, unix.NFTA_CMP_OP, unix.NFTA_CMP_DATA) ||
		!c.is(unix.NFTA_CMP_SREG, sreg) || !c.is(unix.NFTA_CMP_OP, unix.NFT_CMP_EQ) {
		return nil, false
	}
	return c.value(unix.NFTA_CMP_DATA)
}

// numgen reads "numgen random mod N offset K" into dreg, as nft prints
// it (no offset when 0).
func (d *ruleDecoder) numgen(dreg uint32) (text string, mod uint32, ok bool) {
	n, ok := d.next()
	if !ok || !n.has("numgen", unix.NFTA_NG_DREG, unix.NFTA_NG_MODULUS, unix.NFTA_NG_TYPE, unix.NFTA_NG_OFFSET) ||
		!n.is(unix.NFTA_NG_DREG, dreg) || !n.is(unix.NFTA_NG_TYPE, unix.NFT_NG_RANDOM) {
		return "", 0, false
	}
	mod, ok1 := n.u32(unix.NFTA_NG_MODULUS)
	off, ok2 := n.u32(unix.NFTA_NG_OFFSET)
	if !ok1 || !ok2 || mod == 0 {
		return "", 0, false
	}
	text = "numgen random mod " + strconv.FormatUint(uint64(mod), 10)
	if off != 0 {
		text += " offset " + strconv.FormatUint(uint64(off), 10)
	}
	return text, mod, true
}

// payload reads a load of n bytes at offset off of base into dreg.
func (d *ruleDecoder) payload(base, off, n, dreg uint32) bool {
	p, ok := d.next()
	return ok && p.has("payload", unix.NFTA_PAYLOAD_DREG, unix.NFTA_PAYLOAD_BASE, unix.NFTA_PAYLOAD_OFFSET, unix.NFTA_PAYLOAD_LEN) &&
		p.is(unix.NFTA_PAYLOAD_DREG, dreg) && p.is(unix.NFTA_PAYLOAD_BASE, base) &&
		p.is(unix.NFTA_PAYLOAD_OFFSET, off) && p.is(unix.NFTA_PAYLOAD_LEN, n)
}

// lookup reads a lookup of reg 1 in a named set (map: into dreg 1): the
// set's name.
func (d *ruleDecoder) lookup(isMap bool) (string, bool) {
	l, ok := d.next()
	if !ok {
		return "", false
	}
	types := []uint16{unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SREG, unix.NFTA_LOOKUP_FLAGS}
	if isMap {
		types = append(types, unix.NFTA_LOOKUP_DREG)
	}
	if !l.has("lookup", types...) || !l.is(unix.NFTA_LOOKUP_SREG, reg1) || !l.is(unix.NFTA_LOOKUP_FLAGS, 0) ||
		isMap && !l.is(unix.NFTA_LOOKUP_DREG, reg1) {
		return "", false
	}
	name, ok := l.str(unix.NFTA_LOOKUP_SET)
	return name, ok && plainChain(name)
}

// dnat reads a DNAT of this family to the address in reg 1 and the port
// in portReg.
func (d *ruleDecoder) dnat(portReg uint32) bool {
	n, ok := d.next()
	return ok && n.has("nat", unix.NFTA_NAT_TYPE, unix.NFTA_NAT_FAMILY, unix.NFTA_NAT_REG_ADDR_MIN, unix.NFTA_NAT_REG_ADDR_MAX,
		unix.NFTA_NAT_REG_PROTO_MIN, unix.NFTA_NAT_REG_PROTO_MAX, unix.NFTA_NAT_FLAGS) &&
		n.is(unix.NFTA_NAT_TYPE, unix.NFT_NAT_DNAT) && n.is(unix.NFTA_NAT_FAMILY, d.f.proto) &&
		n.is(unix.NFTA_NAT_REG_ADDR_MIN, reg1) && n.is(unix.NFTA_NAT_REG_ADDR_MAX, reg1) &&
		n.is(unix.NFTA_NAT_REG_PROTO_MIN, portReg) && n.is(unix.NFTA_NAT_REG_PROTO_MAX, portReg) &&
		n.is(unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_MAP_IPS|unix.NF_NAT_RANGE_PROTO_SPECIFIED)
}

// immediate reads a constant loaded into dreg.
func (d *ruleDecoder) immediate(dreg uint32) ([]byte, bool) {
	i, ok := d.next()
	if !ok || !i.has("immediate", unix.NFTA_IMMEDIATE_DREG, unix.NFTA_IMMEDIATE_DATA) || !i.is(unix.NFTA_IMMEDIATE_DREG, dreg) {
		return nil, false
	}
	return i.value(unix.NFTA_IMMEDIATE_DATA)
}

// affinityKey reads the affinity key "numgen random mod 1 offset SLOT .
// ip saddr" into reg 1 and on.
func (d *ruleDecoder) affinityKey() (string, bool) {
	ng, mod, ok := d.numgen(reg1)
	if !ok || mod != 1 || !d.payload(unix.NFT_PAYLOAD_NETWORK_HEADER, d.f.saddr, d.f.addrLen, d.f.affinityClient) {
		return "", false
	}
	return ng + " . " + d.f.ipX + " saddr", true
}

// update reads "update @SET { KEY timeout T } meta l4proto P dnat to
// ADDR:PORT", the end of every affinity rule, as knftables writes it.
func (d *ruleDecoder) update() (string, bool) {
	key, ok := d.affinityKey()
	if !ok {
		return "", false
	}
	u, ok := d.next()
	if !ok || !u.has("dynset", unix.NFTA_DYNSET_SREG_KEY, unix.NFTA_DYNSET_OP, unix.NFTA_DYNSET_SET_NAME, unix.NFTA_DYNSET_TIMEOUT, unix.NFTA_DYNSET_FLAGS) ||
		!u.is(unix.NFTA_DYNSET_SREG_KEY, reg1) || !u.is(unix.NFTA_DYNSET_OP, unix.NFT_DYNSET_OP_UPDATE) || !u.is(unix.NFTA_DYNSET_FLAGS, 0) {
		return "", false
	}
	set, ok := u.str(unix.NFTA_DYNSET_SET_NAME)
	ms := u.attrs[unix.NFTA_DYNSET_TIMEOUT]
	if !ok || !plainChain(set) || len(ms) != 8 {
		return "", false
	}
	t := binary.BigEndian.Uint64(ms)
	if t == 0 || t%1000 != 0 {
		return "", false
	}
	proto, ok := d.l4proto()
	if !ok {
		return "", false
	}
	a, ok1 := d.immediate(reg1)
	p, ok2 := d.immediate(reg2)
	addr, ok3 := netip.AddrFromSlice(a)
	if !ok1 || !ok2 || !ok3 || len(a) != int(d.f.addrLen) || len(p) != 2 || !d.dnat(reg2) {
		return "", false
	}
	if inNTOPv4(a) {
		return "", false
	}
	to := netip.AddrPortFrom(addr, binary.BigEndian.Uint16(p)).String()
	return "update @" + set + " { " + key + " timeout " + strconv.FormatUint(t/1000, 10) + "s } meta l4proto " + proto + " dnat to " + to, true
}

// ruleText is the rule exprs say (with comment, when not ""), as nft
// lists it; false for anything but the shapes svcnat writes.
func ruleText(f famRegs, exprs []nlExpr, comment string, anon func(string) (string, bool)) (string, bool) {
	if len(exprs) == 0 {
		return "", false
	}
	text, ok := servicePattern(f, exprs)
	if !ok {
		text, ok = statements(f, exprs, anon)
	}
	if !ok {
		return "", false
	}
	if comment != "" {
		text += " comment \"" + comment + "\""
	}
	return render.AsListed(text), true
}

// servicePattern reads the rules of service, local and dispatch chains,
// as svcnat writes them: the endpoint pick, the three affinity rules and
// the dispatch rule, which nft prints otherwise than statement by
// statement (the dispatch rule's protocol match is implied by its key).
func servicePattern(f famRegs, exprs []nlExpr) (string, bool) {
	d := &ruleDecoder{f: f, ex: exprs}
	var text string
	var ok bool
	switch first := exprs[0].name; {
	case first == "meta" && len(exprs) == 5:
		// meta l4proto P dnat ip addr . port to numgen random mod N offset K map @M
		var proto, ng, m string
		if proto, ok = d.l4proto(); ok {
			if ng, _, ok = d.numgen(reg1); ok {
				if m, ok = d.lookup(true); ok {
					ok = d.dnat(f.pickProtoReg)
					text = "meta l4proto " + proto + " dnat " + f.ipX + " addr . port to " + ng + " map @" + m
				}
			}
		}
	case first == "meta" && len(exprs) == 7:
		// dnat ip addr . port to ip daddr . P dport . numgen random mod N map @M
		var proto, ng, m string
		var mod uint32
		if proto, ok = d.l4proto(); ok && d.payload(unix.NFT_PAYLOAD_NETWORK_HEADER, f.daddr, f.addrLen, reg1) &&
			d.payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, f.afterAddr) {
			if ng, mod, ok = d.numgen(f.afterAddrThen); ok && !strings.Contains(ng, "offset") && mod > 0 {
				if m, ok = d.lookup(true); ok {
					ok = d.dnat(f.afterAddr)
					text = "dnat " + f.ipX + " addr . port to " + f.ipX + " daddr . " + proto + " dport . " + ng + " map @" + m
				}
			}
		} else {
			ok = false
		}
	case first == "numgen" && len(exprs) == 11:
		// KEY @SET update @SET { KEY timeout T } meta l4proto P dnat to A:P
		var key, set, rest string
		if key, ok = d.affinityKey(); ok {
			if set, ok = d.lookup(false); ok {
				rest, ok = d.update()
				text = key + " @" + set + " " + rest
			}
		}
	case first == "numgen" && len(exprs) == 10:
		// numgen random mod N 0 update @SET { … } …
		var ng, rest string
		var mod uint32
		if ng, mod, ok = d.numgen(reg1); ok && !strings.Contains(ng, "offset") && mod > 1 {
			c, _ := d.next()
			var v []byte
			if v, ok = d.cmpEq(c, reg1); ok && len(v) == 4 && binary.NativeEndian.Uint32(v) == 0 {
				rest, ok = d.update()
				text = ng + " 0 " + rest
			} else {
				ok = false
			}
		} else {
			ok = false
		}
	case first == "numgen" && len(exprs) == 8:
		text, ok = d.update()
	}
	if !ok || d.i != len(exprs) {
		return "", false
	}
	return text, true
}

// nlChain reads chain name of fam's table over netlink: its rules as
// nft lists them, and whether it exists. ok is false when the chain
// must be left to nft's listing (see above).
func (r *Runner) nlChain(fam backend.Family, table, name string) (rules []backend.Rule, exists, ok bool, err error) {
	f := regsOf(fam)
	err = netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		before, err := generation(nl)
		if err != nil {
			return err
		}
		tableAttr := netlink.Attribute{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(table + "\x00")}
		ca, err := objects(nl, unix.NFT_MSG_GETCHAIN, byte(f.proto), false, tableAttr,
			netlink.Attribute{Type: unix.NFTA_CHAIN_NAME, Data: []byte(name + "\x00")})
		switch {
		case errors.Is(err, unix.ENOENT):
			// no such chain (or table), unless the ruleset changed
			after, err := generation(nl)
			ok = err == nil && after == before
			return err
		case err != nil:
			return fmt.Errorf("chain %s: %w", name, err)
		}
		if len(ca) != 1 {
			return nil
		}
		ra, err := objects(nl, unix.NFT_MSG_GETRULE, byte(f.proto), true,
			netlink.Attribute{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
			netlink.Attribute{Type: unix.NFTA_RULE_CHAIN, Data: []byte(name + "\x00")})
		if err != nil {
			return fmt.Errorf("the rules of %s: %w", name, err)
		}
		for _, a := range ra {
			if c, _ := strings.CutSuffix(string(a[unix.NFTA_RULE_CHAIN]), "\x00"); c != name {
				return nil
			}
			comment, good := ruleComment(a[unix.NFTA_RULE_USERDATA])
			if !good {
				return nil
			}
			exprs, good := parseExprs(a[unix.NFTA_RULE_EXPRESSIONS])
			if !good {
				return nil
			}
			text, good := ruleText(f, exprs, comment, func(set string) (string, bool) { return anonSet(nl, f, table, set) })
			if !good {
				return nil
			}
			rules = append(rules, backend.NFTRuleOf(name, text))
		}
		after, err := generation(nl)
		if err != nil {
			return err
		}
		exists, ok = true, after == before
		return nil
	})
	if err != nil || !ok {
		return nil, false, false, err
	}
	return rules, exists, true, nil
}

// regAt is the register the kernel names for the 32-bit register k
// (counted from NFT_REG32_00): a 128-bit one's number where k begins one.
func regAt(k uint32) uint32 {
	if k%4 == 0 {
		return reg1 + k/4
	}
	return reg32x + k
}

// statements reads a rule of the other chains statement by statement,
// each as nft prints it: the shapes of the fixed chains, and of the
// external and firewall chains (a firewall's set of source ranges, an
// anonymous set, through anon).
func statements(f famRegs, exprs []nlExpr, anon func(string) (string, bool)) (string, bool) {
	d := &ruleDecoder{f: f, ex: exprs, anon: anon}
	var words []string
	for d.i < len(d.ex) {
		w, ok := d.statement()
		if !ok {
			return "", false
		}
		words = append(words, w)
	}
	return strings.Join(words, " "), true
}

// statement reads one statement at the decoder's place.
func (d *ruleDecoder) statement() (string, bool) {
	start := d.i
	e := d.ex[d.i]
	try := func(read func() (string, bool)) (string, bool) {
		d.i = start
		w, ok := read()
		if !ok {
			d.i = start
		}
		return w, ok
	}
	switch e.name {
	case "ct":
		return try(d.ctMatch)
	case "fib":
		return try(d.fibLocal)
	case "meta":
		if w, ok := try(d.markStatement); ok {
			return w, ok
		}
		if w, ok := try(d.l4protoMatch); ok {
			return w, ok
		}
		return try(d.keyLookup)
	case "payload":
		if w, ok := try(d.keyLookup); ok {
			return w, ok
		}
		return try(d.prefixMatch)
	case "immediate":
		return try(d.verdict)
	case "masq":
		return try(d.masquerade)
	case "reject":
		return try(d.reject)
	}
	return "", false
}

// The bitwise expression's operation (linux/netfilter/nf_tables.h, not
// in x/sys/unix): the kernel gives it since 5.x; mask-and-xor is 0.
const (
	nftaBitwiseOp     = 6 // NFTA_BITWISE_OP
	nftBitwiseMaskXor = 0 // NFT_BITWISE_MASK_XOR (NFT_BITWISE_BOOL)
)

// bitwise reads "reg 1 = (reg 1 & mask) ^ xor" over n bytes.
func (d *ruleDecoder) bitwise(n uint32) (mask, xor []byte, ok bool) {
	b, ok := d.next()
	if !ok || b.name != "bitwise" {
		return nil, nil, false
	}
	types := []uint16{unix.NFTA_BITWISE_SREG, unix.NFTA_BITWISE_DREG, unix.NFTA_BITWISE_LEN, unix.NFTA_BITWISE_MASK, unix.NFTA_BITWISE_XOR}
	if _, op := b.attrs[nftaBitwiseOp]; op {
		if !b.is(nftaBitwiseOp, nftBitwiseMaskXor) {
			return nil, nil, false
		}
		types = append(types, nftaBitwiseOp)
	}
	if !b.has("bitwise", types...) || !b.is(unix.NFTA_BITWISE_SREG, reg1) || !b.is(unix.NFTA_BITWISE_DREG, reg1) || !b.is(unix.NFTA_BITWISE_LEN, n) {
		return nil, nil, false
	}
	mask, ok1 := b.value(unix.NFTA_BITWISE_MASK)
	xor, ok2 := b.value(unix.NFTA_BITWISE_XOR)
	if !ok1 || !ok2 || len(mask) != int(n) || len(xor) != int(n) {
		return nil, nil, false
	}
	return mask, xor, true
}

// cmpOp reads a comparison of reg 1: "" for ==, "!= " for !=, and the value.
func (d *ruleDecoder) cmpOp() (op string, v []byte, ok bool) {
	c, ok := d.next()
	if !ok || !c.has("cmp", unix.NFTA_CMP_SREG, unix.NFTA_CMP_OP, unix.NFTA_CMP_DATA) || !c.is(unix.NFTA_CMP_SREG, reg1) {
		return "", nil, false
	}
	switch {
	case c.is(unix.NFTA_CMP_OP, unix.NFT_CMP_EQ):
	case c.is(unix.NFTA_CMP_OP, unix.NFT_CMP_NEQ):
		op = "!= "
	default:
		return "", nil, false
	}
	v, ok = c.value(unix.NFTA_CMP_DATA)
	return op, v, ok
}

// flagTest reads "(reg 1 & bits) ^ 0 != 0" of 4 host-order bytes: bits.
func (d *ruleDecoder) flagTest() (uint32, bool) {
	mask, xor, ok := d.bitwise(4)
	if !ok || binary.NativeEndian.Uint32(xor) != 0 {
		return 0, false
	}
	op, v, ok := d.cmpOp()
	if !ok || op != "!= " || len(v) != 4 || binary.NativeEndian.Uint32(v) != 0 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(mask), true
}

// ctMatch reads "ct state new" and "ct status dnat".
func (d *ruleDecoder) ctMatch() (string, bool) {
	c, _ := d.next()
	if !c.has("ct", unix.NFTA_CT_DREG, unix.NFTA_CT_KEY) || !c.is(unix.NFTA_CT_DREG, reg1) {
		return "", false
	}
	bits, ok := d.flagTest()
	switch {
	case !ok:
		return "", false
	case c.is(unix.NFTA_CT_KEY, unix.NFT_CT_STATE) && bits == 8: // NF_CT_STATE_BIT(IP_CT_NEW)
		return "ct state new", true
	case c.is(unix.NFTA_CT_KEY, unix.NFT_CT_STATUS) && bits == 0x20: // IPS_DST_NAT
		return "ct status dnat", true
	}
	return "", false
}

// fibLocal reads "fib saddr type local" and "fib daddr type local".
func (d *ruleDecoder) fibLocal() (string, bool) {
	fb, _ := d.next()
	if !fb.has("fib", unix.NFTA_FIB_DREG, unix.NFTA_FIB_RESULT, unix.NFTA_FIB_FLAGS) || !fb.is(unix.NFTA_FIB_DREG, reg1) ||
		!fb.is(unix.NFTA_FIB_RESULT, unix.NFT_FIB_RESULT_ADDRTYPE) {
		return "", false
	}
	var which string
	switch {
	case fb.is(unix.NFTA_FIB_FLAGS, unix.NFTA_FIB_F_SADDR):
		which = "saddr"
	case fb.is(unix.NFTA_FIB_FLAGS, unix.NFTA_FIB_F_DADDR):
		which = "daddr"
	default:
		return "", false
	}
	op, v, ok := d.cmpOp()
	if !ok || op != "" || len(v) != 4 || binary.NativeEndian.Uint32(v) != unix.RTN_LOCAL {
		return "", false
	}
	return "fib " + which + " type local", true
}

// metaLoad reads a meta load of key into dreg.
func (m nlExpr) metaLoad(key, dreg uint32) bool {
	return m.has("meta", unix.NFTA_META_DREG, unix.NFTA_META_KEY) && m.is(unix.NFTA_META_KEY, key) && m.is(unix.NFTA_META_DREG, dreg)
}

// markStatement reads "meta mark & M != 0x00000000" and "meta mark set
// meta mark | M" (and "^ M"), M printed as nft prints a mark.
func (d *ruleDecoder) markStatement() (string, bool) {
	m, _ := d.next()
	if !m.metaLoad(unix.NFT_META_MARK, reg1) {
		return "", false
	}
	if d.i < len(d.ex) && d.ex[d.i].name == "bitwise" && d.i+1 < len(d.ex) && d.ex[d.i+1].name == "cmp" {
		bits, ok := d.flagTest()
		return fmt.Sprintf("meta mark & %#08x != 0x00000000", bits), ok && bits != 0
	}
	mask, xor, ok := d.bitwise(4)
	set, ok2 := d.next()
	if !ok || !ok2 || !set.has("meta", unix.NFTA_META_KEY, unix.NFTA_META_SREG) || !set.is(unix.NFTA_META_KEY, unix.NFT_META_MARK) ||
		!set.is(unix.NFTA_META_SREG, reg1) {
		return "", false
	}
	mk, x := binary.NativeEndian.Uint32(mask), binary.NativeEndian.Uint32(xor)
	switch {
	case x != 0 && mk == ^x:
		return fmt.Sprintf("meta mark set meta mark | %#08x", x), true
	case x != 0 && mk == 0xffffffff:
		return fmt.Sprintf("meta mark set meta mark ^ %#08x", x), true
	}
	return "", false
}

// l4protoMatch reads "meta l4proto P".
func (d *ruleDecoder) l4protoMatch() (string, bool) {
	p, ok := d.l4proto()
	return "meta l4proto " + p, ok
}

// keyLoad is one part of a lookup's key: what nft prints and how many
// bytes it is.
func (d *ruleDecoder) keyPart(e nlExpr, k uint32) (string, uint32, bool) {
	switch {
	case e.metaLoad(unix.NFT_META_L4PROTO, regAt(k)):
		return "meta l4proto", 1, true
	case e.has("payload", unix.NFTA_PAYLOAD_DREG, unix.NFTA_PAYLOAD_BASE, unix.NFTA_PAYLOAD_OFFSET, unix.NFTA_PAYLOAD_LEN) && e.is(unix.NFTA_PAYLOAD_DREG, regAt(k)):
		switch {
		case e.is(unix.NFTA_PAYLOAD_BASE, unix.NFT_PAYLOAD_TRANSPORT_HEADER) && e.is(unix.NFTA_PAYLOAD_OFFSET, 2) && e.is(unix.NFTA_PAYLOAD_LEN, 2):
			return "th dport", 2, true
		case e.is(unix.NFTA_PAYLOAD_BASE, unix.NFT_PAYLOAD_NETWORK_HEADER) && e.is(unix.NFTA_PAYLOAD_LEN, d.f.addrLen):
			switch {
			case e.is(unix.NFTA_PAYLOAD_OFFSET, d.f.saddr):
				return d.f.ipX + " saddr", d.f.addrLen, true
			case e.is(unix.NFTA_PAYLOAD_OFFSET, d.f.daddr):
				return d.f.ipX + " daddr", d.f.addrLen, true
			}
		}
	}
	return "", 0, false
}

// keyLookup reads a key (one part, or a concatenation) looked up in a
// named set: "KEY @S", or in a verdict map, "KEY vmap @M".
func (d *ruleDecoder) keyLookup() (string, bool) {
	var parts []string
	k := uint32(0)
	for d.i < len(d.ex) {
		part, n, ok := d.keyPart(d.ex[d.i], k)
		if !ok {
			break
		}
		d.i++
		parts = append(parts, part)
		k += (n + 3) / 4
	}
	l, ok := d.next()
	if len(parts) == 0 || !ok || l.name != "lookup" {
		return "", false
	}
	key := strings.Join(parts, " . ")
	name, ok := l.str(unix.NFTA_LOOKUP_SET)
	if ok && strings.HasPrefix(name, "__set") && len(parts) == 1 && strings.Contains(key, "addr") && d.anon != nil &&
		l.has("lookup", unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SREG, unix.NFTA_LOOKUP_FLAGS) && l.is(unix.NFTA_LOOKUP_SREG, reg1) {
		// an anonymous set of addresses: "ip saddr != { … }"
		set, ok := d.anon(name)
		switch {
		case ok && l.is(unix.NFTA_LOOKUP_FLAGS, 0):
			return key + " " + set, true
		case ok && l.is(unix.NFTA_LOOKUP_FLAGS, unix.NFT_LOOKUP_F_INV):
			return key + " != " + set, true
		}
		return "", false
	}
	if !ok || !plainChain(name) || strings.HasPrefix(name, "__") || !l.is(unix.NFTA_LOOKUP_SREG, reg1) || !l.is(unix.NFTA_LOOKUP_FLAGS, 0) {
		return "", false
	}
	switch {
	case l.has("lookup", unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SREG, unix.NFTA_LOOKUP_FLAGS):
		return key + " @" + name, true
	case l.has("lookup", unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SREG, unix.NFTA_LOOKUP_DREG, unix.NFTA_LOOKUP_FLAGS) && l.is(unix.NFTA_LOOKUP_DREG, unix.NFT_REG_VERDICT):
		return key + " vmap @" + name, true
	}
	return "", false
}

// prefixMatch reads "ip saddr [!= ]PREFIX" (daddr too): a load of the
// prefix's bytes of the address (of the whole address, masked, when the
// prefix ends inside a byte), and a comparison, as nft prints it (an
// address alone for a whole one).
func (d *ruleDecoder) prefixMatch() (string, bool) {
	p, _ := d.next()
	if !p.has("payload", unix.NFTA_PAYLOAD_DREG, unix.NFTA_PAYLOAD_BASE, unix.NFTA_PAYLOAD_OFFSET, unix.NFTA_PAYLOAD_LEN) ||
		!p.is(unix.NFTA_PAYLOAD_DREG, reg1) || !p.is(unix.NFTA_PAYLOAD_BASE, unix.NFT_PAYLOAD_NETWORK_HEADER) {
		return "", false
	}
	var field string
	switch {
	case p.is(unix.NFTA_PAYLOAD_OFFSET, d.f.saddr):
		field = " saddr "
	case p.is(unix.NFTA_PAYLOAD_OFFSET, d.f.daddr):
		field = " daddr "
	default:
		return "", false
	}
	n, _ := p.u32(unix.NFTA_PAYLOAD_LEN)
	if n == 0 || n > d.f.addrLen {
		return "", false
	}
	bits := int(n) * 8
	var mask []byte
	if d.i < len(d.ex) && d.ex[d.i].name == "bitwise" {
		m, xor, ok := d.bitwise(n)
		if !ok || strings.Trim(string(xor), "\x00") != "" {
			return "", false
		}
		// a prefix not ending on a byte: nft loads the whole address and
		// masks it, ones then zeros
		ones := 0
		for ones < int(n)*8 && bit(m, ones) == 1 {
			ones++
		}
		for i := ones; i < int(n)*8; i++ {
			if bit(m, i) != 0 {
				return "", false
			}
		}
		if ones == 0 || ones == int(n)*8 {
			return "", false
		}
		mask, bits = m, ones
	}
	op, v, ok := d.cmpOp()
	if !ok || len(v) != int(n) {
		return "", false
	}
	full := make([]byte, d.f.addrLen)
	copy(full, v)
	for i := range mask {
		if v[i]&^mask[i] != 0 {
			return "", false
		}
	}
	a, ok := netip.AddrFromSlice(full)
	if !ok || inNTOPv4(full) {
		return "", false
	}
	text := a.String()
	if bits != int(d.f.addrLen)*8 {
		text += "/" + strconv.Itoa(bits)
	}
	return d.f.ipX + field + op + text, true
}

// verdict reads "drop", "accept", "jump C", "goto C", "return".
func (d *ruleDecoder) verdict() (string, bool) {
	i, _ := d.next()
	if !i.has("immediate", unix.NFTA_IMMEDIATE_DREG, unix.NFTA_IMMEDIATE_DATA) || !i.is(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT) {
		return "", false
	}
	a, err := attrsOnce(i.attrs[unix.NFTA_IMMEDIATE_DATA])
	v, ok := a[unix.NFTA_DATA_VERDICT]
	if err != nil || len(a) != 1 || !ok {
		return "", false
	}
	// "return", the canary's rule, which no verdict map of svcnat's
	// holds (verdictText, shared with the elements, refuses it)
	if va, err := attrsOnce(v); err == nil && len(va) == 1 && len(va[unix.NFTA_VERDICT_CODE]) == 4 &&
		int32(binary.BigEndian.Uint32(va[unix.NFTA_VERDICT_CODE])) == int32(expr.VerdictReturn) {
		return "return", true
	}
	return verdictText(v)
}

// masquerade reads "masquerade fully-random".
func (d *ruleDecoder) masquerade() (string, bool) {
	m, _ := d.next()
	return "masquerade fully-random", m.has("masq", unix.NFTA_MASQ_FLAGS) && m.is(unix.NFTA_MASQ_FLAGS, unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY)
}

// reject reads "reject": ICMP port unreachable (IPv4, code 3) or ICMPv6
// port unreachable (code 4), which nft prints so in a table of the
// family.
func (d *ruleDecoder) reject() (string, bool) {
	r, _ := d.next()
	code := byte(3)
	if d.f.addrLen == 16 {
		code = 4
	}
	c := r.attrs[unix.NFTA_REJECT_ICMP_CODE]
	return "reject", r.has("reject", unix.NFTA_REJECT_TYPE, unix.NFTA_REJECT_ICMP_CODE) &&
		r.is(unix.NFTA_REJECT_TYPE, unix.NFT_REJECT_ICMP_UNREACH) && len(c) == 1 && c[0] == code
}

// ruleComment reads a rule's user data: its comment (NFTNL_UDATA_RULE_COMMENT,
// NUL-terminated), or "" for none; false for anything else in it.
func ruleComment(b []byte) (string, bool) {
	if b == nil {
		return "", true
	}
	if len(b) < 3 || b[0] != 0 || int(b[1]) != len(b)-2 || b[len(b)-1] != 0 {
		return "", false
	}
	c := string(b[2 : len(b)-1])
	return c, c != "" && plainComment(c)
}

// nlRules reads every rule of fam's table over netlink, by chain, in
// each chain's order, as nft lists them, between two reads of the
// ruleset's generation. ok is false when a rule is of a shape ruleText
// does not read.
//
// Chain by chain, over nlWorkers sockets at once: the kernel resumes a
// dump of the whole table's rules, message after message, by walking it
// again from its first rule to where it stopped, so that one dump grows
// with the square of the rules (12 to 22 s at 30,000 services; nft's own
// listing pays it too), where a dump of one chain starts at that chain.
// One request waits on the kernel and the scheduler more than it works
// (0.3 ms), so several sockets, each made in the namespace, ask at once.
func (r *Runner) nlRules(fam backend.Family, table string) (rules map[string][]backend.Rule, gen [2]uint32, ok bool, err error) {
	f := regsOf(fam)
	rules = map[string][]backend.Rule{}
	err = netns.Do(r.netns, func() error {
		var conns []*netlink.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range nlWorkers {
			c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		nl := conns[0]
		if gen[0], err = generation(nl); err != nil {
			return err
		}
		ca, err := objects(nl, unix.NFT_MSG_GETCHAIN, byte(f.proto), true,
			netlink.Attribute{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(table + "\x00")})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("the chains of %s: %w", table, err)
		}
		names := make([]string, len(ca))
		for i, c := range ca {
			name, good := strings.CutSuffix(string(c[unix.NFTA_CHAIN_NAME]), "\x00")
			if !good || !plainChain(name) {
				return nil
			}
			names[i] = name
		}
		read := make([][]backend.Rule, len(names))
		var next atomic.Int64
		var failed atomic.Bool
		errs := make([]error, len(conns))
		var wg sync.WaitGroup
		for w, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				anon := func(set string) (string, bool) { return anonSet(c, f, table, set) }
				for i := int(next.Add(1) - 1); i < len(names) && !failed.Load(); i = int(next.Add(1) - 1) {
					ra, err := objects(c, unix.NFT_MSG_GETRULE, byte(f.proto), true,
						netlink.Attribute{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
						netlink.Attribute{Type: unix.NFTA_RULE_CHAIN, Data: []byte(names[i] + "\x00")})
					if errors.Is(err, unix.ENOENT) {
						// the chain went meanwhile: not read, and the
						// caller's generations say the ruleset changed
						failed.Store(true)
						return
					}
					if err != nil {
						errs[w] = fmt.Errorf("the rules of %s: %w", names[i], err)
						failed.Store(true)
						return
					}
					for _, a := range ra {
						chain, good := strings.CutSuffix(string(a[unix.NFTA_RULE_CHAIN]), "\x00")
						comment, good2 := ruleComment(a[unix.NFTA_RULE_USERDATA])
						exprs, good3 := parseExprs(a[unix.NFTA_RULE_EXPRESSIONS])
						if !good || !good2 || !good3 || chain != names[i] {
							failed.Store(true)
							return
						}
						text, good := ruleText(f, exprs, comment, anon)
						if !good {
							failed.Store(true)
							return
						}
						read[i] = append(read[i], backend.NFTRuleOf(chain, text))
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if failed.Load() {
			return nil
		}
		for i, name := range names {
			if len(read[i]) > 0 {
				rules[name] = read[i]
			}
		}
		// after the anonymous sets' reads too
		if gen[1], err = generation(nl); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return rules, gen, ok && err == nil, err
}

// nlWorkers is how many sockets nlRules asks the kernel through at once.
const nlWorkers = 4

// readSplit is readOwned's first read, for a table whose every rule is
// of a shape ruleText reads: the declarations of its chains, sets and
// maps listed by nft (`nft -t list chains; list sets table; list maps`,
// for which nft fetches no rules and no elements: 0.08 s at 10,000
// services where listing the table tersely takes 2.2 s), and every rule
// and element over netlink, all at once, between two reads of the
// ruleset's generation, which must agree. terseByNFT: a rule or an
// element is not read so; the caller lists the table.
func (r *Runner) readSplit(fam backend.Family) (*backend.Ruleset, terseResult, error) {
	rs := &backend.Ruleset{Family: fam, Syntax: backend.NFTables}
	before, err := r.generation()
	if err != nil {
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	var read *nlRead
	var rules map[string][]backend.Rule
	var gens [2]uint32
	var nlErr, ruleErr error
	rulesOK := false
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		read, nlErr = r.nlElements(fam, r.table, nil)
	}()
	go func() {
		defer wg.Done()
		rules, gens, rulesOK, ruleErr = r.nlRules(fam, r.table)
	}()
	nf := backend.NFTFamily(fam)
	out, err := r.output(nil, "-t", "list", "chains", nf, ";", "list", "sets", "table", nf, r.table, ";", "list", "maps", nf)
	wg.Wait()
	switch {
	case nlErr != nil:
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, nlErr)
	case ruleErr != nil:
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, ruleErr)
	case missing(err):
		return rs, terseDone, nil
	case err != nil:
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	after, err := r.generation()
	if err != nil {
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	if !rulesOK {
		if before != after {
			return nil, terseAgain, nil // a chain went while it was read
		}
		return nil, terseByNFT, nil
	}
	if before != after || read.genBefore != before || read.genAfter != after || gens[0] != before || gens[1] != after {
		return nil, terseAgain, nil
	}
	tab, err := tableOfBlocks(string(out), r.table)
	if err != nil {
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	if tab == nil {
		return rs, terseDone, nil
	}
	for _, c := range tab.Chains {
		if c.Kind != backend.KindChain {
			continue
		}
		c.Rules = rules[c.Name]
		delete(rules, c.Name)
	}
	if len(rules) > 0 {
		return nil, terseAgain, nil // rules of a chain nft did not list
	}
	res, err := r.fillElements(fam, tab, read)
	if err != nil || res != terseDone {
		return nil, res, err
	}
	rs.Tables = []*backend.Table{tab}
	return rs, terseDone, nil
}

// tableOfBlocks merges the blocks of table name in a listing of several
// commands (one "table FAMILY NAME { … }" each; other tables' are
// skipped), its sets and maps before its chains, as `nft list table`
// orders them. nil: no block of it.
func tableOfBlocks(text, name string) (*backend.Table, error) {
	var tab *backend.Table
	var chains, sets []*backend.Chain
	var block strings.Builder
	in, mine := false, false
	for _, line := range strings.SplitAfter(text, "\n") {
		if !in && strings.HasPrefix(line, "table ") {
			f := strings.Fields(line)
			in, mine = true, len(f) == 4 && f[2] == name
			block.Reset()
		} else if !in && strings.TrimSpace(line) != "" {
			return nil, fmt.Errorf("nft's listing: %q outside a table", strings.TrimSpace(line))
		}
		if mine {
			block.WriteString(line)
		}
		if !in || strings.TrimSuffix(line, "\n") != "}" {
			continue
		}
		if mine {
			t, err := parseListing(block.String())
			if err != nil {
				return nil, err
			}
			tab = t
			for _, c := range t.Chains {
				if c.Kind == backend.KindChain {
					chains = append(chains, c)
				} else {
					sets = append(sets, c)
				}
			}
		}
		in, mine = false, false
	}
	if in {
		return nil, fmt.Errorf("nft's listing ends inside a table")
	}
	if tab == nil {
		return nil, nil
	}
	tab.Chains = append(sets, chains...)
	return tab, nil
}

// The data types nft gives an address set's key (NFTA_SET_KEY_TYPE:
// TYPE_IPADDR, TYPE_IP6ADDR in nft's datatype.h).
const (
	nftTypeIPAddr  = 7
	nftTypeIP6Addr = 8
)

// anonSet reads the anonymous set name of table (the "{ … }" of
// addresses and prefixes of a firewall chain's rule) as nft prints it,
// "{ 10.0.0.1, 192.168.0.0/24 }": its declaration must be nft's for such
// a set (anonymous, constant, intervals of the family's addresses) and
// every element a key with at most the interval-end flag.
func anonSet(nl *netlink.Conn, f famRegs, table, name string) (string, bool) {
	sa, err := objects(nl, unix.NFT_MSG_GETSET, byte(f.proto), false,
		netlink.Attribute{Type: unix.NFTA_SET_TABLE, Data: []byte(table + "\x00")},
		netlink.Attribute{Type: unix.NFTA_SET_NAME, Data: []byte(name + "\x00")})
	if err != nil || len(sa) != 1 {
		return "", false
	}
	typ := uint32(nftTypeIPAddr)
	if f.addrLen == 16 {
		typ = nftTypeIP6Addr
	}
	if u32(sa[0][unix.NFTA_SET_FLAGS]) != unix.NFT_SET_ANONYMOUS|unix.NFT_SET_CONSTANT|unix.NFT_SET_INTERVAL ||
		u32(sa[0][unix.NFTA_SET_KEY_LEN]) != f.addrLen || u32(sa[0][unix.NFTA_SET_KEY_TYPE]) != typ || sa[0][unix.NFTA_SET_DATA_TYPE] != nil {
		return "", false
	}
	msgs, err := objects(nl, unix.NFT_MSG_GETSETELEM, byte(f.proto), true,
		netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table + "\x00")},
		netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(name + "\x00")})
	if err != nil {
		return "", false
	}
	type bound struct {
		key []byte
		end bool
	}
	var bounds []bound
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m[unix.NFTA_SET_ELEM_LIST_ELEMENTS])
		if err != nil {
			return "", false
		}
		for ad.Next() {
			a, err := attrsOnce(ad.Bytes())
			if err != nil || ad.Type()&^unix.NLA_F_NESTED != unix.NFTA_LIST_ELEM {
				return "", false
			}
			key, err := attrsOnce(a[unix.NFTA_SET_ELEM_KEY])
			v := key[unix.NFTA_DATA_VALUE]
			flags, hasFlags := a[unix.NFTA_SET_ELEM_FLAGS]
			if err != nil || len(key) != 1 || len(v) != int(f.addrLen) || len(a) != 1+map[bool]int{true: 1}[hasFlags] ||
				hasFlags && (len(flags) != 4 || binary.BigEndian.Uint32(flags)&^unix.NFT_SET_ELEM_INTERVAL_END != 0) {
				return "", false
			}
			bounds = append(bounds, bound{v, hasFlags && binary.BigEndian.Uint32(flags) != 0})
		}
		if ad.Err() != nil {
			return "", false
		}
	}
	// In address order, an interval's end (its last address + 1) before
	// the start of the next interval at the same address.
	slices.SortFunc(bounds, func(a, b bound) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		if a.end == b.end {
			return 0
		}
		if a.end {
			return -1
		}
		return 1
	})
	var parts []string
	for i := 0; i < len(bounds); i++ {
		b := bounds[i]
		if b.end {
			if i == 0 && strings.Trim(string(b.key), "\x00") == "" {
				continue // nft's end marker at the zero address
			}
			return "", false
		}
		last := bytes.Repeat([]byte{0xff}, int(f.addrLen)) // to the end of the space
		if i+1 < len(bounds) {
			if !bounds[i+1].end {
				return "", false
			}
			i++
			last = slices.Clone(bounds[i].key)
			for j := len(last) - 1; j >= 0; j-- { // minus one
				last[j]--
				if last[j] != 0xff {
					break
				}
			}
		}
		text, ok := rangeText(b.key, last)
		if !ok {
			return "", false
		}
		parts = append(parts, text)
	}
	if len(parts) < 2 {
		// nft writes one address or prefix as a plain match, not a set;
		// how it lists a set left with one it made is not known here
		return "", false
	}
	return "{ " + strings.Join(parts, ", ") + " }", true
}

// rangeText is the addresses first … last as nft prints them in a set:
// one address, a prefix, or "first-last".
func rangeText(first, last []byte) (string, bool) {
	a, ok1 := netip.AddrFromSlice(first)
	z, ok2 := netip.AddrFromSlice(last)
	if !ok1 || !ok2 || z.Less(a) || inNTOPv4(first) || inNTOPv4(last) {
		return "", false
	}
	bits := len(first) * 8
	common := 0
	for common < bits && bit(first, common) == bit(last, common) {
		common++
	}
	prefix := true
	for i := common; i < bits; i++ {
		if bit(first, i) != 0 || bit(last, i) != 1 {
			prefix = false
		}
	}
	switch {
	case prefix && common == bits:
		return a.String(), true
	case prefix:
		return a.String() + "/" + strconv.Itoa(common), true
	}
	return a.String() + "-" + z.String(), true
}

// inNTOPv4 reports an IPv6 address of ::/80 (IPv4-mapped and
// -compatible ones), which glibc's inet_ntop, as nft prints, may write
// otherwise than Go does (as elementDecoder refuses them too); but ::1
// and ::, which both write alike (nft lists "ip6 daddr != ::1").
func inNTOPv4(b []byte) bool {
	if len(b) != 16 || [10]byte(b[:10]) != [10]byte{} {
		return false
	}
	a := netip.AddrFrom16([16]byte(b))
	return a != netip.IPv6Loopback() && a != netip.IPv6Unspecified()
}

// bit is bit i of b, counted from the most significant.
func bit(b []byte, i int) byte { return b[i/8] >> (7 - i%8) & 1 }
