// Package conntrack deletes conntrack entries with the conntrack binary
// found on PATH, inside a named network namespace when given. It takes
// plain values (which flows to delete) and decides nothing: the planner
// says which flows are stale, the engine asks for their deletion.
package conntrack

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/iptables"
)

// Flow selects conntrack entries by their original destination and the
// address they were DNATed to.
type Flow struct {
	Protocol string     // "udp", "tcp" or "sctp"
	OrigDst  netip.Addr // the original destination; the zero Addr for any (a node port on every address)
	OrigPort int        // the original destination port
	DNAT     netip.Addr // the address the entries were DNATed to
}

// IPv6 reports whether the flow is an IPv6 one.
func (f Flow) IPv6() bool { return f.DNAT.Unmap().Is6() }

// Args returns the conntrack command line that deletes the flow's entries.
func Args(f Flow) []string {
	fam := "ipv4"
	if f.IPv6() {
		fam = "ipv6"
	}
	args := []string{"-D", "-f", fam, "-p", f.Protocol}
	if f.OrigDst.IsValid() {
		args = append(args, "--orig-dst", f.OrigDst.String())
	}
	args = append(args, "--orig-port-dst", strconv.Itoa(f.OrigPort))
	return append(args, "--dst-nat", f.DNAT.String())
}

// Tool deletes entries with the conntrack binary in a network namespace
// ("" for svcnat's own).
type Tool struct {
	NetNS string
}

// Delete deletes the entries of every flow and returns how many flows had
// entries. conntrack exits 1 when a filter matched nothing; that is not an
// error here, and nothingDeleted is the one place that reads its words.
func (t Tool) Delete(flows []Flow) (int, error) {
	if len(flows) == 0 {
		return 0, nil
	}
	bin, err := exec.LookPath("conntrack")
	if err != nil {
		return 0, fmt.Errorf("clearing stale conntrack entries: %w (install the conntrack package)", err)
	}
	deleted := 0
	for _, f := range flows {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, Args(f)...)
		cmd.Stderr = &stderr
		err := iptables.InNetNS(t.NetNS, cmd.Start)
		if err == nil {
			err = cmd.Wait()
		}
		switch {
		case err == nil:
			deleted++
		case nothingDeleted(stderr.String()):
		default:
			return deleted, fmt.Errorf("conntrack %s: %w: %s", strings.Join(Args(f), " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	return deleted, nil
}

// nothingDeleted recognises conntrack-tools' report that a delete filter
// matched no entry ("0 flow entries have been deleted."), which it signals
// with exit status 1 like a real failure.
func nothingDeleted(stderr string) bool {
	return strings.Contains(stderr, " 0 flow entries have been deleted")
}
