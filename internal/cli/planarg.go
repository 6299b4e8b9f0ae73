package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/svcnat/svcnat/internal/config"
)

// notAPlan is the error of svcnat cmd (apply, show) given file, which it
// could not read or decode as a saved plan (err): data is what the file
// holds (nil: it could not be read), suffix what the command adds to its
// errors ("; nothing was changed"). It is nil for a file that is a saved
// plan, only one that cannot be used (changed, corrupt, of another
// format): making it again over the same name is what helps, and the
// caller says so. Of any other file the hint never suggests writing a
// plan over it (svcnat plan -out FILE): following it would lose what the
// file holds, a configuration above all, which is what a new user gives
// apply as they give it to terraform.
func notAPlan(cmd, file string, data []byte, err error, suffix string) error {
	switch {
	case data != nil && isSavedPlan(data):
		return nil
	case isConfiguration(file, data):
		hint := "give the configuration with -c: svcnat apply -c " + file
		if cmd != "apply" {
			hint = "svcnat plan -c " + file + " shows what that configuration would change"
		}
		return withHint(fmt.Errorf("%s is a configuration, not a saved plan: svcnat %s takes a saved plan file (one that svcnat plan -out FILE wrote)%s",
			file, cmd, suffix), hint)
	case data == nil:
		return err
	}
	return withHint(fmt.Errorf("%s: %w%s", file, err, suffix),
		fmt.Sprintf("svcnat %s takes a file that svcnat plan -out FILE wrote, under a name of its own; a configuration is given with -c", cmd))
}

// isConfiguration reports whether file is a configuration rather than a
// plan: a directory, a .hcl file, or a file of HCL (attributes or blocks,
// no syntax errors), read with the configuration's own guards.
func isConfiguration(file string, data []byte) bool {
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return true
	}
	if data == nil {
		return false
	}
	if strings.HasSuffix(file, ".hcl") {
		return true
	}
	res, diags := config.FormatFile(file, data)
	if diags.HasErrors() || res.File == nil {
		return false
	}
	body, ok := res.File.Body.(*hclsyntax.Body)
	return ok && (len(body.Attributes) > 0 || len(body.Blocks) > 0)
}

// isSavedPlan reports whether data says it is a saved svcnat plan
// (planner.MarshalPlan's kind), whatever else is wrong with it.
func isSavedPlan(data []byte) bool {
	var head struct {
		Kind string `json:"kind"`
	}
	return json.Unmarshal(data, &head) == nil && head.Kind == "svcnat-plan"
}
