package render

import (
	"fmt"
	"io"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Renderer is the iptables backend's backend.Renderer: kube-proxy's rules
// (Render), read back from iptables-save text, written as an
// iptables-restore --noflush payload.
type Renderer struct{}

// Render is Render.
func (Renderer) Render(cfg *config.Config, opts backend.RenderOptions) (*backend.Rendered, error) {
	return Render(cfg, opts)
}

// Parse reads iptables-save text.
func (Renderer) Parse(fam backend.Family, r io.Reader) (*backend.Ruleset, error) {
	return rules.ParseSave(fam, r)
}

// WriteInput writes rs as an iptables-restore --noflush payload, after a
// comment naming the tool it is for.
func (Renderer) WriteInput(w io.Writer, rs *backend.Ruleset, node string) error {
	tool := "iptables-restore"
	if rs.Family == backend.IPv6 {
		tool = "ip6tables-restore"
	}
	if _, err := fmt.Fprintf(w, "# %s: %d rules, for %s --noflush (node %s)\n", rs.Family, rs.RuleCount(), tool, node); err != nil {
		return err
	}
	return rules.WriteRestore(rs, w)
}
