package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/config"
)

func validateCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "validate",
		Usage: "parse and check the configuration; print every problem with its file:line:column",
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(c, g)
			if err != nil {
				return err
			}
			if g.JSON {
				if err := config.WriteDiagnosticsJSON(c.App.Writer, nil); err != nil {
					return fmt.Errorf("writing the JSON report: %w", err)
				}
				return nil
			}
			// "in ." would end the sentence twice: name the directory.
			where := g.Config
			if abs, err := filepath.Abs(where); err == nil && strings.HasSuffix(where, ".") {
				where = abs
			}
			fmt.Fprintf(c.App.Writer, "The configuration is valid: %s in %s.\n", plural(len(cfg.Services), "service"), where)
			return nil
		},
		ArgsUsage: "[FILE|DIR]",
		Before:    configArg,
	}
}

// loadConfig reads and validates the configuration, printing every
// diagnostic to stderr, or with --json a machine-readable report of the
// errors to stdout (where the plan would have gone); it fails with exit 1
// when any diagnostic is an error.
func loadConfig(c *ucli.Context, g Globals) (*config.Config, error) {
	cfg, diags := config.Load(g.Config)
	var lost error
	switch {
	case g.JSON && diags.HasErrors():
		lost = config.WriteDiagnosticsJSON(c.App.Writer, diags)
	case len(diags) > 0: // warnings only with --json: stdout is the command's
		config.WriteDiagnostics(c.App.ErrWriter, cfg.Files, diags, g.colorOn(c.App.ErrWriter), 0)
	}
	if diags.HasErrors() {
		err := fmt.Errorf("%s in %s; nothing was changed", plural(len(diags.Errs()), "problem"), g.Config)
		if lost != nil {
			// A tool reading the report gets a broken document: say so.
			err = fmt.Errorf("%w; writing the JSON report failed: %w", err, lost)
		}
		return nil, exitWith(ExitError, err)
	}
	return cfg, nil
}

func fmtCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "fmt",
		Usage:     "rewrite the configuration files in canonical HCL form",
		ArgsUsage: "[FILE|DIR ...]",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "check", Usage: "change nothing; exit 3 when a file is not formatted"},
			&ucli.BoolFlag{Name: "diff", Usage: "print the changes formatting makes as a unified diff (patch -p1 applies it)"},
			&ucli.BoolFlag{Name: "recursive", Usage: "also the files of every directory below each DIR (not dot directories)"},
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			paths := c.Args().Slice()
			if len(paths) == 0 {
				paths = []string{g.Config}
			}
			var files []string
			for _, p := range paths {
				names, diags := config.FormatNames(p, c.Bool("recursive"))
				if diags.HasErrors() {
					config.WriteDiagnostics(c.App.ErrWriter, nil, diags, false, 0)
					return exitWith(ExitError, fmt.Errorf("nothing was formatted"))
				}
				files = append(files, names...)
			}
			changed := 0
			for _, f := range files {
				// config.ReadFile refuses what is not a regular file (a FIFO
				// would block fmt forever) and files past config's size limit.
				src, d := config.ReadFile(f)
				if d != nil {
					config.WriteDiagnostics(c.App.ErrWriter, nil, hcl.Diagnostics{d}, false, 0)
					return exitWith(ExitError, fmt.Errorf("%s cannot be formatted; nothing was changed", f))
				}
				res, diags := config.FormatFile(f, src)
				if diags.HasErrors() {
					config.WriteDiagnostics(c.App.ErrWriter, map[string]*hcl.File{f: res.File}, diags, false, 0)
					return exitWith(ExitError, fmt.Errorf("%s does not parse; nothing was changed", f))
				}
				out := res.Formatted
				if bytes.Equal(src, out) {
					continue
				}
				changed++
				// With -diff the diff's headers name the file, and the
				// output is a patch as it stands (svcnat fmt -diff >x.patch).
				if c.Bool("diff") {
					if err := writeUnifiedDiff(c.App.Writer, f, string(src), string(out)); err != nil {
						return err
					}
				} else {
					fmt.Fprintln(c.App.Writer, f)
				}
				if !c.Bool("check") {
					if err := writeKeepingMode(f, out); err != nil {
						return err
					}
				}
			}
			if c.Bool("check") && changed > 0 {
				return exitWith(ExitFormat, nil)
			}
			return nil
		},
		Before: fmtArgs,
	}
}

func writeKeepingMode(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, fi.Mode().Perm())
}
