package cli

import (
	"encoding/json"
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Tests read plan --json back into the view's own types; svcnat only
// writes it.

func (r *jsonRuleText) UnmarshalText(b []byte) error {
	toks, err := rules.Tokenize(string(b))
	if err != nil {
		return err
	}
	if len(toks) < 2 || toks[0] != "-A" {
		return fmt.Errorf("not a rule: %q", b)
	}
	*r = jsonRuleText{Chain: toks[1], Args: toks[2:]}
	return nil
}

func (rs *jsonRuleLines) UnmarshalJSON(b []byte) error {
	var in []jsonRuleText
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*rs = make(jsonRuleLines, len(in))
	for i, r := range in {
		(*rs)[i] = backend.Rule(r)
	}
	return nil
}
