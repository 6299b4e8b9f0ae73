package nftables

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Read implements backend.Kernel: `nft list table FAMILY TABLE`, the
// owned table (parseListing). A missing table is an empty ruleset.
// Without like (a read of the whole host: trace --live, not a plan), it
// adds the base chains of every other table of the family (ip or ip6,
// and inet), declared without their rules, from `nft -j list chains`:
// what else the kernel runs on svcnat's hooks, which trace names as not
// evaluated. Their rules are never read, and nothing of them is svcnat's
// (backend.Ruleset.Owned). like is otherwise not used: the listing's
// strings are fresh either way.
func (r *Runner) Read(fam backend.Family, like *backend.Ruleset) (*backend.Ruleset, error) {
	rs, err := r.readOwned(fam)
	if err != nil || like != nil {
		return rs, err
	}
	others, err := r.otherBaseChains(fam)
	if err != nil {
		return nil, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	rs.Tables = append(rs.Tables, others...)
	return rs, nil
}

// otherBaseChains are the base chains of the tables of fam's family and
// of inet tables other than svcnat's, as tables of declarations ("inet
// filter" names an inet table; a table of fam's own family keeps its
// name).
func (r *Runner) otherBaseChains(fam backend.Family) ([]*backend.Table, error) {
	out, err := r.output(nil, "-j", "list", "chains")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []struct {
			Chain *struct {
				Family, Table, Name, Type, Hook, Policy string
				Prio                                    *int
			} `json:"chain"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft -j list chains: %w", err)
	}
	var tables []*backend.Table
	byName := map[string]*backend.Table{}
	for _, o := range doc.Nftables {
		c := o.Chain
		if c == nil || c.Hook == "" || c.Prio == nil {
			continue
		}
		name := c.Table
		switch {
		case c.Family == backend.NFTFamily(fam) && c.Table == r.table:
			continue
		case c.Family == backend.NFTFamily(fam):
		case c.Family == "inet":
			name = "inet " + c.Table
		default:
			continue
		}
		t := byName[name]
		if t == nil {
			t = &backend.Table{Name: name}
			byName[name] = t
			tables = append(tables, t)
		}
		decl := fmt.Sprintf("type %s hook %s priority %d ;", c.Type, c.Hook, *c.Prio)
		if c.Policy != "" && c.Policy != "accept" {
			decl += " policy " + c.Policy + " ;"
		}
		t.Chains = append(t.Chains, &backend.Chain{Name: c.Name, Policy: decl})
	}
	return tables, nil
}

// readOwned reads svcnat's table of fam: first its declarations listed
// by nft and every rule and element over netlink (readSplit); when a
// rule is of a shape the netlink reader does not know (a hand edit, an
// address nft prints its own way), its declarations, chains
// and rules from `nft -t list table` (terse: without the elements) and
// the elements over netlink (readTerse), which at 10,000 services took
// 2.6 s against the whole listing's 4.5 s. Read while the ruleset's
// generation changed, it is read again; a set whose elements
// elementDecoder cannot decode, or a third change, has the table listed
// whole by nft (readListing): the model is the same either way.
func (r *Runner) readOwned(fam backend.Family) (*backend.Ruleset, error) {
	for range 3 {
		rs, res, err := r.readSplit(fam)
		if err != nil || res == terseDone {
			return rs, err
		}
		if res == terseByNFT {
			break
		}
	}
	for range 3 {
		rs, res, err := r.readTerse(fam)
		switch {
		case err != nil || res == terseDone:
			return rs, err
		case res == terseByNFT:
			// Not worth another try: what the decoder refuses (a host
			// without /etc/protocols refuses every service-ips element)
			// it refuses again.
			return r.readListing(fam)
		}
	}
	return r.readListing(fam)
}

// terseResult is how a readTerse ended.
type terseResult int

const (
	terseDone  terseResult = iota
	terseAgain             // the ruleset changed meanwhile
	terseByNFT             // what was read is nft's to list
)

// readTerse is readOwned's read. The listing and the netlink read run at
// once (nft works a core, the kernel's dump of the elements another),
// between two reads of the ruleset's generation, which must agree.
func (r *Runner) readTerse(fam backend.Family) (*backend.Ruleset, terseResult, error) {
	rs := &backend.Ruleset{Family: fam, Syntax: backend.NFTables}
	before, err := r.generation()
	if err != nil {
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	var read *nlRead
	var nlErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		read, nlErr = r.nlElements(fam, r.table, nil)
	}()
	out, err := r.output(nil, "-t", "list", "table", backend.NFTFamily(fam), r.table)
	<-done
	switch {
	case nlErr != nil:
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, nlErr)
	case missing(err):
		return rs, terseDone, nil
	case err != nil:
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	after, err := r.generation()
	if err != nil {
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	if before != after || read.genBefore != before || read.genAfter != after {
		return nil, terseAgain, nil
	}
	tab, err := parseListing(string(out))
	if err != nil {
		return nil, terseDone, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	if tab == nil {
		return rs, terseDone, nil
	}
	if res, err := r.fillElements(fam, tab, read); err != nil || res != terseDone {
		return nil, res, err
	}
	rs.Tables = []*backend.Table{tab}
	return rs, terseDone, nil
}

// fillElements gives the sets and maps of tab, declared as nft listed
// them, the elements read over netlink, decoded by those declarations
// (which it remembers for ReadChain); terseByNFT when one cannot be.
func (r *Runner) fillElements(fam backend.Family, tab *backend.Table, read *nlRead) (terseResult, error) {
	for _, c := range tab.Chains {
		if c.Kind == backend.KindChain {
			continue
		}
		s := read.sets[c.Name]
		if !s.exists || s.dynamic != dynamicDecl(c.Policy) {
			return terseByNFT, nil
		}
		r.remember(fam, r.table, c.Name, read.table, s.ident, c.Policy)
		if s.dynamic {
			continue // parseListing's too: state, not rules
		}
		rules, ok := elementRules(c.Name, c.Policy, s.elems)
		if !ok {
			return terseByNFT, nil
		}
		c.Rules = rules
	}
	return terseDone, nil
}

// readListing reads svcnat's table of fam from `nft list table`.
func (r *Runner) readListing(fam backend.Family) (*backend.Ruleset, error) {
	rs := &backend.Ruleset{Family: fam, Syntax: backend.NFTables}
	out, err := r.output(nil, "list", "table", backend.NFTFamily(fam), r.table)
	switch {
	case missing(err):
		return rs, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	tab, err := parseListing(string(out))
	if err != nil {
		return nil, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	if tab != nil {
		rs.Tables = []*backend.Table{tab}
	}
	return rs, nil
}

// dynamicDecl reports a declaration in the model's form (setDecl) with
// "flags dynamic": the affinity set, whose elements are state.
func dynamicDecl(decl string) bool {
	var lines []string
	for _, p := range strings.Split(decl, " ;") {
		lines = append(lines, strings.TrimSpace(p))
	}
	return dynamic(lines)
}

// ReadChain implements backend.Kernel for a chain, a set or a map. The
// kernel says over netlink whether the name is a set or map, and gives
// its elements and handle; they are decoded by the declaration a Read
// or an earlier ReadChain listed for the set of that handle (remember),
// or else by its declaration listed now, tersely (`nft -t list map`,
// which at 10,000 services still cost 0.1–0.5 s: nft fetches the
// elements it does not print). A chain, or a set whose elements cannot
// be decoded, or read while the ruleset changed, is listed by nft
// (readChainListing).
func (r *Runner) ReadChain(fam backend.Family, table, name string) ([]backend.Rule, bool, error) {
	if name == backend.NFTCanary {
		// reconcile's canary, read at every look: a chain, always, and
		// over netlink (nft list chain caches the whole table first: 1 to
		// 1.5 s at 10,000 services, which slowed every look tenfold).
		if rules, exists, ok, err := r.nlChain(fam, table, name); err == nil && ok {
			return rules, exists, nil
		}
		return r.readChainListing(fam, table, name, []string{"chain"})
	}
	read, err := r.nlElements(fam, table, []string{name})
	if err != nil {
		return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, name, err)
	}
	s := read.sets[name]
	switch {
	case !s.exists:
		// Over netlink what it can read so (nlChain); nft lists the
		// rest, and reads again what netlink could not.
		if rules, exists, ok, err := r.nlChain(fam, table, name); err == nil && ok {
			return rules, exists, nil
		}
		return r.readChainListing(fam, table, name, []string{"chain"})
	case s.dynamic:
		return nil, true, nil // its elements are state (parseListing)
	case !read.consistent():
		return r.readChainListing(fam, table, name, []string{"map", "set", "chain"})
	}
	if decl, ok := r.recall(fam, table, name, read.table, s.ident); ok {
		if rules, ok := elementRules(name, decl, s.elems); ok {
			return rules, true, nil
		}
		return r.readChainListing(fam, table, name, []string{"map", "set", "chain"})
	}
	for _, kind := range []string{"map", "set"} {
		out, err := r.output(nil, "-t", "list", kind, backend.NFTFamily(fam), table, name)
		if missing(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, name, err)
		}
		tab, err := parseListing(string(out))
		if err != nil {
			return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, name, err)
		}
		if tab == nil || tab.Chain(name) == nil {
			break
		}
		decl := tab.Chain(name).Policy
		last, err := r.generation()
		if err != nil {
			return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, name, err)
		}
		if last != read.genAfter {
			break
		}
		r.remember(fam, table, name, read.table, s.ident, decl)
		if rules, ok := elementRules(name, decl, s.elems); ok {
			return rules, true, nil
		}
		break
	}
	return r.readChainListing(fam, table, name, []string{"map", "set", "chain"})
}

// declKey names a set or map of a family's table.
type declKey struct {
	fam         backend.Family
	table, name string
}

// decl is a set's declaration as listed, and its table's handle and the
// set's identity (setIdentity: its handle and declared attributes) when
// it was: while both are the same, so is the declaration (the kernel
// changes no set's types, flags or user data in place).
type decl struct {
	table, set uint64
	text       string
}

// remember keeps the declaration text of the set of that table handle
// and set identity, listed in a generation of the ruleset they were read
// in.
func (r *Runner) remember(fam backend.Family, table, name string, tableHandle, setHandle uint64, text string) {
	r.declsMu.Lock()
	defer r.declsMu.Unlock()
	if r.decls == nil {
		r.decls = map[declKey]decl{}
	}
	r.decls[declKey{fam, table, name}] = decl{tableHandle, setHandle, text}
}

// recall is the declaration remembered for the set of that table handle
// and set identity.
func (r *Runner) recall(fam backend.Family, table, name string, tableHandle, setHandle uint64) (string, bool) {
	r.declsMu.Lock()
	defer r.declsMu.Unlock()
	d, ok := r.decls[declKey{fam, table, name}]
	if !ok || d.table != tableHandle || d.set != setHandle {
		return "", false
	}
	return d.text, true
}

// readChainListing lists the name as each of kinds in turn, with nft:
// the name does not say which it is. The kernel's ENOENT for a kind the
// name is not costs a few milliseconds.
func (r *Runner) readChainListing(fam backend.Family, table, name string, kinds []string) ([]backend.Rule, bool, error) {
	for _, kind := range kinds {
		out, err := r.output(nil, "list", kind, backend.NFTFamily(fam), table, name)
		if missing(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, name, err)
		}
		tab, err := parseListing(string(out))
		if err != nil {
			return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, name, err)
		}
		if tab == nil || tab.Chain(name) == nil {
			return nil, false, fmt.Errorf("reading %s %s %s: nft listed no %s of that name", fam, table, name, kind)
		}
		return tab.Chain(name).Rules, true, nil
	}
	return nil, false, nil
}

// Transactions implements backend.Kernel (see transactions).
func (r *Runner) Transactions(fam backend.Family, changes []backend.ChainChange, batch int) ([]*backend.Transaction, *backend.Transaction) {
	return transactions(fam, changes, batch)
}

// Write implements backend.Kernel (see write).
func (r *Runner) Write(tx *backend.Transaction) { write(tx) }

// Run implements backend.Kernel: the script goes to `nft -f -` as an
// unlinked file, not a pipe, so that svcnat dying half-way through writing
// it cannot hand nft a cut script; nft commits it as one transaction. A
// cold start with elements commits in two (see coldStart).
func (r *Runner) Run(tx *backend.Transaction) error {
	if tx.Payload == nil {
		r.Write(tx)
	}
	if tx.Lines == 0 {
		return nil
	}
	sets, cold, err := r.coldStart(tx)
	if err != nil {
		return fmt.Errorf("writing %s rules: %w", tx.Family, err)
	}
	if !cold {
		return r.runScript(tx.Family, tx.Payload)
	}
	head, _ := writeScript(tx, withoutElements)
	if err := r.runScript(tx.Family, head); err != nil {
		return err
	}
	nlErr := r.addElements(tx.Family, sets)
	if nlErr == nil {
		return nil
	}
	// A batch the kernel refused committed nothing; nft, given the same
	// elements, commits them if the batch's failure was its own (its
	// acknowledgements lost), or names the element the kernel refuses.
	elems, _ := writeScript(tx, elementsOnly)
	if err := r.runScript(tx.Family, elems); err != nil {
		return fmt.Errorf("%w (over netlink first: %v)", err, nlErr)
	}
	return nil
}

func (r *Runner) runScript(fam backend.Family, payload []byte) error {
	in, err := payloadFile(payload)
	if err != nil {
		return fmt.Errorf("writing %s rules: %w", fam, err)
	}
	defer in.Close()
	_, err = r.output(in, "-f", "-")
	var ne *nftError
	if errors.As(err, &ne) {
		var ee *exec.ExitError
		if errors.As(ne.err, &ee) {
			return txFailure(fam, payload, ne.stderr, err)
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s rules: %w", fam, err)
	}
	return nil
}

// payloadFile returns an unlinked temporary file holding payload, rewound.
func payloadFile(payload []byte) (*os.File, error) {
	f, err := os.CreateTemp("", "svcnat-nft-")
	if err != nil {
		return nil, fmt.Errorf("staging the payload: %w", err)
	}
	os.Remove(f.Name())
	if _, err := f.Write(payload); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging the payload: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging the payload: %w", err)
	}
	return f, nil
}

// nftLocation is the head of nft's error message: "/dev/stdin:3:1-20:
// Error: Could not process rule: No such file or directory".
var nftLocation = regexp.MustCompile(`(?m)^[^:\n]*:(\d+):(\d+)(?:-\d+)?: Error: (.*)$`)

// txFailure turns nft's refusal of a script into a *backend.TxError naming
// the first line nft blamed. It is the one place nft's stderr is read.
func txFailure(fam backend.Family, payload []byte, stderr string, err error) error {
	e := &backend.TxError{Family: fam, Tool: "nft", Stderr: stderr, Err: err}
	if m := nftLocation.FindStringSubmatch(stderr); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		e.Reason = strings.TrimSpace(m[3])
		e.LineText = refusedElement(payloadLine(payload, e.Line), col)
	} else if r, ok := strings.CutPrefix(strings.TrimSpace(firstLine(stderr)), "Error: "); ok {
		e.Reason = r
	}
	return e
}

// refusedElement shortens an element statement (elementsPerStatement
// elements to a line) to the element at 1-based column col, which nft
// points at when it refuses one: "add element ip svcnat m { …, 1.1.1.2 :
// goto c, … }". Other lines, and a column outside the elements, are kept
// whole.
func refusedElement(line string, col int) string {
	open := strings.Index(line, " { ")
	if !strings.Contains(line, " element ") || open < 0 || col-1 < open+3 || col-1 >= len(line) {
		return line
	}
	start := open + 3
	if i := strings.LastIndex(line[:col-1], ", "); i >= start {
		start = i + 2
	}
	end := len(line) - len(" }")
	if i := strings.Index(line[col-1:], ", "); i >= 0 && col-1+i < end {
		end = col - 1 + i
	}
	if end < start {
		return line
	}
	head, elem := line[:open+3], line[start:end]
	if start > open+3 {
		head += "…, "
	}
	if end < len(line)-len(" }") {
		elem += ", …"
	}
	return head + elem + " }"
}

// payloadLine is line n (1-based) of payload, "" past its end.
func payloadLine(payload []byte, n int) string {
	lines := strings.Split(string(payload), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// RemoveTable implements backend.Kernel: it deletes fam's table when it
// holds no chain, set or map. nft takes no lock: an object another program
// adds between the listing and the delete goes with the table, the one
// window svcnat cannot close with nft's own means.
func (r *Runner) RemoveTable(fam backend.Family, table string) (bool, error) {
	if table != r.table {
		// Only svcnat's own table is ever given back, whatever a state
		// directory's record of created tables names.
		return false, fmt.Errorf("removing the %s %s table: it is not svcnat's (%s): %w", fam, table, r.table, backend.ErrTableInUse)
	}
	out, err := r.output(nil, "-t", "list", "table", backend.NFTFamily(fam), table)
	switch {
	case missing(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	tab, err := parseListing(string(out))
	if err != nil {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	if tab != nil && len(tab.Chains) > 0 {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, backend.ErrTableInUse)
	}
	if err := r.runScript(fam, []byte("delete table "+backend.NFTFamily(fam)+" "+table+"\n")); err != nil {
		return false, fmt.Errorf("removing the %s %s table: %w", fam, table, err)
	}
	return true, nil
}
