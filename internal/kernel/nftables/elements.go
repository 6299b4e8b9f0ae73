package nftables

import (
	"bufio"
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// An element's fields, as svcnat's sets and maps declare them (render's
// package doc), each decoded from the kernel's bytes into the text nft
// 1.0.6 lists for it. Only these are known: a declaration naming any
// other type is read with nft (elementDecoder's ok is false).
type fieldKind int

const (
	fieldIPv4    fieldKind = iota // ipv4_addr, ip saddr/daddr: 4 bytes
	fieldIPv6                     // ipv6_addr, ip6 saddr/daddr: 16 bytes
	fieldProto                    // inet_proto: 1 byte, printed by its /etc/protocols name
	fieldPort                     // inet_service, tcp/udp/sctp dport: 2 bytes, big endian, decimal
	fieldNumgen                   // numgen random mod N: a 32-bit integer in host byte order, decimal
	fieldVerdict                  // verdict: a map's data only
)

// size is the field's length in the kernel's key or data.
func (k fieldKind) size() int {
	switch k {
	case fieldIPv4, fieldNumgen:
		return 4
	case fieldIPv6:
		return 16
	case fieldProto:
		return 1
	case fieldPort:
		return 2
	}
	return 0
}

var typeFields = map[string]fieldKind{
	"ipv4_addr": fieldIPv4, "ipv6_addr": fieldIPv6, "inet_proto": fieldProto, "inet_service": fieldPort,
}

var typeofFields = map[string]fieldKind{
	"ip saddr": fieldIPv4, "ip daddr": fieldIPv4, "ip6 saddr": fieldIPv6, "ip6 daddr": fieldIPv6,
	"tcp dport": fieldPort, "udp dport": fieldPort, "sctp dport": fieldPort,
}

// elementDecoder turns a set's or map's elements, as the kernel holds
// them, into the text nft lists.
type elementDecoder struct {
	key, data []fieldKind // data is nil for a set
}

// newElementDecoder reads a set's or map's declaration in the model's
// form (setDecl: "type ipv4_addr . inet_proto . inet_service : verdict ;
// comment \"…\" ;", or "typeof …"). ok is false for a declaration it does
// not know all of: a type or expression not above, or any property but
// the comment (flags, a timeout, a size, a policy, …: what changes how
// nft lists an element, or what the kernel keeps with it, is nft's to
// read).
func newElementDecoder(decl string) (d elementDecoder, ok bool) {
	parts := strings.Split(strings.TrimSuffix(strings.TrimSpace(decl), ";"), " ;")
	var typ string
	for i, p := range parts {
		p = strings.TrimSpace(p)
		switch {
		case i == 0:
			typ = p
		case strings.HasPrefix(p, "comment "):
		default:
			return d, false
		}
	}
	var fields map[string]fieldKind
	typeof := false
	switch {
	case strings.HasPrefix(typ, "type "):
		fields, typ = typeFields, strings.TrimPrefix(typ, "type ")
	case strings.HasPrefix(typ, "typeof "):
		fields, typ, typeof = typeofFields, strings.TrimPrefix(typ, "typeof "), true
	default:
		return d, false
	}
	keyText, dataText, isMap := strings.Cut(typ, " : ")
	field := func(s string) (fieldKind, bool) {
		if k, ok := fields[s]; ok {
			return k, true
		}
		// numgen's result: only typeof declares it (its type,
		// integer, says nothing of the byte order).
		if n, ok := strings.CutPrefix(s, "numgen random mod "); ok && typeof {
			if _, err := strconv.ParseUint(n, 10, 32); err == nil {
				return fieldNumgen, true
			}
		}
		return 0, false
	}
	for _, s := range strings.Split(keyText, " . ") {
		k, ok := field(s)
		if !ok {
			return d, false
		}
		d.key = append(d.key, k)
	}
	if !isMap {
		return d, true
	}
	if dataText == "verdict" && !typeof {
		d.data = []fieldKind{fieldVerdict}
		return d, true
	}
	for _, s := range strings.Split(dataText, " . ") {
		k, ok := field(s)
		if !ok {
			return d, false
		}
		d.data = append(d.data, k)
	}
	return d, true
}

// text is the element as nft lists it: "key", "key comment \"…\"", with
// " : data" for a map. ok is false for an element it cannot decode with
// certainty: one with more than a key, data and a comment (a timeout, a
// counter, an interval's end), lengths other than the declaration's, a
// protocol without a name here, a verdict other than drop, accept, jump
// or goto, a comment nft might print otherwise.
func (d elementDecoder) text(e gnft.SetElement) (string, bool) {
	if e.KeyEnd != nil || e.IntervalEnd || e.Timeout != 0 || e.Expires != 0 || e.Counter != nil || e.VerdictData != nil {
		return "", false
	}
	var b strings.Builder
	if !appendFields(&b, d.key, e.Key) {
		return "", false
	}
	if e.Comment != "" {
		if !plainComment(e.Comment) {
			return "", false
		}
		b.WriteString(` comment "` + e.Comment + `"`)
	}
	switch {
	case d.data == nil:
		if e.Val != nil {
			return "", false
		}
	case len(d.data) == 1 && d.data[0] == fieldVerdict:
		v, ok := verdictText(e.Val)
		if !ok {
			return "", false
		}
		b.WriteString(" : " + v)
	default:
		b.WriteString(" : ")
		if !appendFields(&b, d.data, e.Val) {
			return "", false
		}
	}
	return b.String(), true
}

// appendFields writes the fields of a key or data, " . " between them.
// A concatenation pads each field to 4 bytes (the kernel's registers);
// one field is its own length.
func appendFields(b *strings.Builder, kinds []fieldKind, raw []byte) bool {
	concat := len(kinds) > 1
	for i, k := range kinds {
		n := k.size()
		width := n
		if concat {
			width = (n + 3) &^ 3
		}
		if len(raw) < width {
			return false
		}
		v := raw[:n]
		for _, pad := range raw[n:width] {
			if pad != 0 {
				return false
			}
		}
		raw = raw[width:]
		if i > 0 {
			b.WriteString(" . ")
		}
		switch k {
		case fieldIPv4:
			b.WriteString(netip.AddrFrom4([4]byte(v)).String())
		case fieldIPv6:
			a := netip.AddrFrom16([16]byte(v))
			// glibc's inet_ntop, which nft prints with, writes the
			// addresses of ::/80 (IPv4-mapped and -compatible ones)
			// otherwise than Go does.
			if [10]byte(v[:10]) == [10]byte{} {
				return false
			}
			b.WriteString(a.String())
		case fieldProto:
			name, ok := protocolName(v[0])
			if !ok {
				return false
			}
			b.WriteString(name)
		case fieldPort:
			b.WriteString(strconv.Itoa(int(binary.BigEndian.Uint16(v))))
		case fieldNumgen:
			b.WriteString(strconv.FormatUint(uint64(binary.NativeEndian.Uint32(v)), 10))
		default:
			return false
		}
	}
	return len(raw) == 0
}

// plainComment is a comment nft prints as it is between quotes: no quote,
// backslash or control character.
func plainComment(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// verdictText reads a verdict map's data: google/nftables hands it over
// as the NFTA_DATA_VERDICT attribute's payload (NFTA_VERDICT_CODE, and
// NFTA_VERDICT_CHAIN for a jump or goto).
func verdictText(raw []byte) (string, bool) {
	ad, err := netlink.NewAttributeDecoder(raw)
	if err != nil {
		return "", false
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	haveCode := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code, haveCode = int32(ad.Uint32()), true
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		default:
			return "", false
		}
	}
	if ad.Err() != nil || !haveCode {
		return "", false
	}
	switch expr.VerdictKind(code) {
	case expr.VerdictDrop:
		return "drop", chain == ""
	case expr.VerdictAccept:
		return "accept", chain == ""
	case expr.VerdictJump, expr.VerdictGoto:
		if !plainChain(chain) {
			return "", false
		}
		if expr.VerdictKind(code) == expr.VerdictJump {
			return "jump " + chain, true
		}
		return "goto " + chain, true
	}
	return "", false
}

// plainChain is a chain name nft prints as it is: svcnat's names
// (render's names.go) are letters, digits and "-_./".
func plainChain(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '/':
		default:
			return false
		}
	}
	return true
}

// protocolName is the name nft prints for an inet_proto: the first name
// /etc/protocols gives the number (getprotobynumber); only tcp, udp and
// sctp, svcnat's, are looked up.
func protocolName(p byte) (string, bool) {
	protocolsOnce.Do(readProtocols)
	name, ok := protocols[p]
	return name, ok
}

var (
	protocolsOnce sync.Once
	protocols     map[byte]string
)

func readProtocols() {
	protocols = map[byte]string{}
	f, err := os.Open("/etc/protocols")
	if err != nil {
		return // nft then prints numbers: nft reads those elements
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		n, err := strconv.Atoi(fs[1])
		if err != nil || (n != unix.IPPROTO_TCP && n != unix.IPPROTO_UDP && n != unix.IPPROTO_SCTP) {
			continue
		}
		if _, seen := protocols[byte(n)]; !seen {
			protocols[byte(n)] = fs[0]
		}
	}
}

// element encodes an element's text, as the model holds it ("key",
// "key comment \"…\"", with " : data" for a map), into what the kernel
// keeps: the inverse of text. ok is false for text that text would not
// give back exactly from what it encodes (every encoding is decoded again
// and compared), so that an element svcnat writes over netlink reads back
// as the element it meant.
func (d elementDecoder) element(text string) (e gnft.SetElement, ok bool) {
	keyText, dataText, isMap := strings.Cut(text, " : ")
	if isMap != (d.data != nil) {
		return e, false
	}
	if k, c, has := strings.Cut(keyText, ` comment "`); has {
		keyText, e.Comment = k, strings.TrimSuffix(c, `"`)
	}
	if e.Key, ok = encodeFields(d.key, keyText); !ok {
		return e, false
	}
	// read is e as a read hands it to text: a verdict as the
	// NFTA_DATA_VERDICT attribute's payload.
	read := e
	switch {
	case d.data == nil:
	case d.data[0] == fieldVerdict:
		verb, chain, _ := strings.Cut(dataText, " ")
		v := &expr.Verdict{Chain: chain}
		switch verb {
		case "goto":
			v.Kind = expr.VerdictGoto
		case "jump":
			v.Kind = expr.VerdictJump
		case "drop":
			v.Kind = expr.VerdictDrop
		case "accept":
			v.Kind = expr.VerdictAccept
		default:
			return e, false
		}
		attrs := []netlink.Attribute{{Type: unix.NFTA_VERDICT_CODE, Data: binary.BigEndian.AppendUint32(nil, uint32(v.Kind))}}
		if chain != "" {
			attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_VERDICT_CHAIN, Data: []byte(chain + "\x00")})
		}
		raw, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return e, false
		}
		e.VerdictData, read.Val = v, raw
	default:
		if e.Val, ok = encodeFields(d.data, dataText); !ok {
			return e, false
		}
		read.Val = e.Val
	}
	back, ok := d.text(read)
	return e, ok && back == text
}

// encodeFields is the key or data of fields' text (" . " between them),
// each field padded to 4 bytes in a concatenation, as appendFields reads
// them.
func encodeFields(kinds []fieldKind, text string) ([]byte, bool) {
	words := strings.Split(text, " . ")
	if len(words) != len(kinds) {
		return nil, false
	}
	var out []byte
	for i, k := range kinds {
		w := words[i]
		switch k {
		case fieldIPv4, fieldIPv6:
			a, err := netip.ParseAddr(w)
			if err != nil || a.Is4() != (k == fieldIPv4) || a.Zone() != "" {
				return nil, false
			}
			out = append(out, a.AsSlice()...)
		case fieldProto:
			n, ok := protocolNumber(w)
			if !ok {
				return nil, false
			}
			out = append(out, n)
		case fieldPort:
			n, err := strconv.ParseUint(w, 10, 16)
			if err != nil {
				return nil, false
			}
			out = binary.BigEndian.AppendUint16(out, uint16(n))
		case fieldNumgen:
			n, err := strconv.ParseUint(w, 10, 32)
			if err != nil {
				return nil, false
			}
			out = binary.NativeEndian.AppendUint32(out, uint32(n))
		default:
			return nil, false
		}
		if len(kinds) > 1 {
			for len(out)%4 != 0 {
				out = append(out, 0)
			}
		}
	}
	return out, true
}
