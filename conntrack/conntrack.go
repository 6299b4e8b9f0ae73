// Package conntrack deletes stale UDP conntrack entries with the conntrack
// binary found on PATH, inside a named network namespace when given. It
// decides nothing: the planner says which flows are stale.
package conntrack

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// Args returns the conntrack command line that deletes one stale flow.
func Args(f planner.StaleFlow) []string {
	fam := "ipv4"
	if f.Family == rules.IPv6 {
		fam = "ipv6"
	}
	args := []string{"-D", "-f", fam, "-p", "udp"}
	if f.VIP != "" {
		args = append(args, "--orig-dst", f.VIP, "--orig-port-dst", strconv.Itoa(f.Port))
	} else {
		args = append(args, "--orig-port-dst", strconv.Itoa(f.NodePort))
	}
	return append(args, "--dst-nat", f.Endpoint)
}

// Clear deletes the entries of every flow and returns how many flows had
// entries. conntrack exits 1 when a filter matched nothing; that is not an
// error here, and nothingDeleted is the one place that reads its words.
func Clear(netns string, flows []planner.StaleFlow) (int, error) {
	if len(flows) == 0 {
		return 0, nil
	}
	bin, err := exec.LookPath("conntrack")
	if err != nil {
		return 0, fmt.Errorf("clearing stale UDP conntrack entries: %w (install the conntrack package)", err)
	}
	cleared := 0
	for _, f := range flows {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, Args(f)...)
		cmd.Stderr = &stderr
		err := iptables.InNetNS(netns, cmd.Start)
		if err == nil {
			err = cmd.Wait()
		}
		switch {
		case err == nil:
			cleared++
		case nothingDeleted(stderr.String()):
		default:
			return cleared, fmt.Errorf("conntrack %s: %w: %s", strings.Join(Args(f), " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	return cleared, nil
}

// nothingDeleted recognises conntrack-tools' report that a delete filter
// matched no entry ("0 flow entries have been deleted."), which it signals
// with exit status 1 like a real failure.
func nothingDeleted(stderr string) bool {
	return strings.Contains(stderr, " 0 flow entries have been deleted")
}
