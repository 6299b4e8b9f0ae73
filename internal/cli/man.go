package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/buildinfo"
)

// The man page, svcnat(8), is written here rather than by urfave/cli's
// ToMan, which repeats the global flags under every command, shows every
// default as ="" and has none of a man page's other sections. Commands,
// flags, defaults and environment variables still come from the command
// definitions, as --help's do; the prose sections are below.

// roff escapes text for a roff line: backslashes and dashes (a plain "-"
// is a hyphen, which man turns into a typographic one and breaks
// copy-and-paste), and a leading dot or quote, which would make a request.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// flagPlaceholders name the value of flags whose usage names none.
var flagPlaceholders = map[string]string{
	"config":        "FILE|DIR",
	"node":          "NAME",
	"netns":         "NAME",
	"state-dir":     "DIR",
	"iptables-save": "FILE",
	"local-address": "ADDRESS",
	"metrics-addr":  "ADDRESS:PORT",
	"metrics-file":  "PATH",
	"probe":         "URL",
	"id":            "ID",
	"src":           "ADDRESS",
	"dst":           "ADDRESS",
	"dport":         "PORT",
	"in-interface":  "NAME",
	"service":       "NAMESPACE/NAME",
}

// manFlag writes one flag as a .TP entry: its names, its value, its usage,
// default and environment variable.
func manFlag(sb *strings.Builder, f ucli.Flag) {
	doc, ok := f.(ucli.DocGenerationFlag)
	if !ok {
		return
	}
	if v, ok := f.(ucli.VisibleFlag); ok && !v.IsVisible() {
		return
	}
	var names []string
	for _, n := range f.Names() {
		dashes := "--"
		if len(n) == 1 {
			dashes = "-"
		}
		names = append(names, `\fB`+roff(dashes+n)+`\fR`)
	}
	placeholder, usage := unquoteUsage(doc.GetUsage())
	head := strings.Join(names, ", ")
	if doc.TakesValue() {
		name := f.Names()[0]
		switch vs := flagValues[name]; {
		case vs != nil:
			var alts []string
			for _, v := range vs {
				alts = append(alts, `\fI`+roff(v)+`\fR`)
			}
			placeholder = strings.Join(alts, "|")
		case placeholder != "":
			placeholder = `\fI` + roff(placeholder) + `\fR`
		default:
			placeholder = `\fI` + roff(placeholderOf(f)) + `\fR`
		}
		head += " " + placeholder
	}
	fmt.Fprintf(sb, ".TP\n%s\n%s", head, roff(usage))
	// A required flag's usage says so (requireFlags); its default is none.
	if d := defaultOf(f); d != "" && !strings.HasSuffix(usage, "(required)") {
		fmt.Fprintf(sb, " (default: %s)", roff(d))
	}
	if env := doc.GetEnvVars(); len(env) > 0 {
		fmt.Fprintf(sb, "; environment: %s", strings.Join(env, ", "))
	}
	sb.WriteString(".\n")
}

// unquoteUsage takes a flag's placeholder from its usage, where
// urfave/cli's help finds it: the first word in backquotes ("save the plan
// to `FILE`").
func unquoteUsage(usage string) (string, string) {
	before, rest, ok := strings.Cut(usage, "`")
	if !ok {
		return "", usage
	}
	name, after, ok := strings.Cut(rest, "`")
	if !ok {
		return "", usage
	}
	return name, before + name + after
}

func placeholderOf(f ucli.Flag) string {
	if p, ok := flagPlaceholders[f.Names()[0]]; ok {
		return p
	}
	switch f.(type) {
	case *ucli.DurationFlag:
		return "DURATION"
	case *ucli.IntFlag, *ucli.Int64Flag, *ucli.UintFlag, *ucli.Uint64Flag:
		return "N"
	}
	return "VALUE"
}

// defaultOf is a flag's default as one would type it: auto, not "auto";
// nothing for an empty one, a false bool, or a number or duration that is
// zero, which for svcnat's flags means not given (rollback --to 0 is no
// generation, apply --confirm-timeout 0s asks for no confirmation).
func defaultOf(f ucli.Flag) string {
	switch b := f.(type) {
	case *ucli.BoolFlag:
		return boolDefault(b)
	case cmdLineBool:
		return boolDefault(b.BoolFlag)
	case *ucli.IntFlag:
		return nonZero(b.Value, f)
	case *ucli.Int64Flag:
		return nonZero(b.Value, f)
	case *ucli.UintFlag:
		return nonZero(b.Value, f)
	case *ucli.Uint64Flag:
		return nonZero(b.Value, f)
	case *ucli.DurationFlag:
		return nonZero(b.Value, f)
	}
	return defaultText(f)
}

// nonZero is f's default text unless its default value v is zero.
func nonZero[T comparable](v T, f ucli.Flag) string {
	var zero T
	if v == zero {
		return ""
	}
	return defaultText(f)
}

// defaultText is f's default as urfave/cli's help shows it, unquoted.
func defaultText(f ucli.Flag) string {
	d := f.(ucli.DocGenerationFlag).GetDefaultText()
	if u, err := strconv.Unquote(d); err == nil {
		d = u
	}
	if d == "[]" {
		return ""
	}
	return d
}

func boolDefault(b *ucli.BoolFlag) string {
	if b.Value {
		return "true"
	}
	return ""
}

// ownFlags are a command's flags without the global ones prepared gave it.
func ownFlags(cmd *ucli.Command) []ucli.Flag {
	var global []string
	for _, f := range globalFlags() {
		global = append(global, f.Names()[0])
	}
	var own []ucli.Flag
	for _, f := range cmd.Flags {
		if n := f.Names()[0]; !slices.Contains(global, n) && n != "help" {
			own = append(own, f)
		}
	}
	return own
}

func manPage(app *ucli.App) string {
	var sb strings.Builder
	// The date is the commit's, so that a build of a commit is the same
	// page (and package) whenever it is made.
	date := buildinfo.Read().Time
	if len(date) >= len("2006-01-02") {
		date = date[:len("2006-01-02")]
	}
	fmt.Fprintf(&sb, ".TH svcnat 8 \"%s\" \"svcnat %s\" \"System Administration\"\n", date, roff(app.Version))
	fmt.Fprintf(&sb, ".SH NAME\nsvcnat \\- %s\n", roff(app.Usage))
	sb.WriteString(`.SH SYNOPSIS
.B svcnat
[\fIGLOBAL OPTIONS\fR] \fICOMMAND\fR [\fIOPTIONS\fR] [\fIARGUMENTS\fR]
`)
	sb.WriteString(manDescription)
	sb.WriteString(".SH GLOBAL OPTIONS\n" +
		"Global options are accepted before or after the command name. A flag given on the command line wins over its environment variable.\n")
	for _, f := range app.Flags {
		manFlag(&sb, f)
	}
	sb.WriteString(".SH COMMANDS\n")
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		fmt.Fprintf(&sb, ".TP\n\\fBsvcnat %s\\fR", roff(c.Name))
		own := ownFlags(c)
		if len(own) > 0 {
			sb.WriteString(` [\fIOPTIONS\fR]`)
		}
		if c.ArgsUsage != "" {
			sb.WriteString(" " + roff(c.ArgsUsage))
		}
		fmt.Fprintf(&sb, "\n%s.\n", roff(c.Usage))
		if len(own) > 0 {
			sb.WriteString(".RS\n")
			for _, f := range own {
				manFlag(&sb, f)
			}
			sb.WriteString(".RE\n")
		}
	}
	sb.WriteString(manExitStatus)
	sb.WriteString(".SH ENVIRONMENT\n")
	seen := map[string]bool{}
	env := func(f ucli.Flag, where string) {
		doc, ok := f.(ucli.DocGenerationFlag)
		if !ok {
			return
		}
		for _, v := range doc.GetEnvVars() {
			if seen[v] {
				continue
			}
			seen[v] = true
			n := f.Names()[0]
			fmt.Fprintf(&sb, ".TP\n.B %s\nThe default of %s\\fB%s\\fR.\n", v, where, roff("--"+n))
		}
	}
	for _, f := range app.Flags {
		env(f, "")
	}
	for _, c := range app.Commands {
		for _, f := range ownFlags(c) {
			env(f, `\fBsvcnat `+roff(c.Name)+`\fR `)
		}
	}
	sb.WriteString(manEnvironment)
	sb.WriteString(manFiles)
	sb.WriteString(manExamples)
	sb.WriteString(manSeeAlso)
	return sb.String()
}

const manDescription = `.SH DESCRIPTION
.B svcnat
gives a Linux host without Kubernetes the iptables rules kube\-proxy writes
for Services: cluster IPs, node ports, external IPs, load\-balancer
addresses, session affinity and health\-check node ports, from HCL files.
It works as Terraform does:
.B plan
diffs the chains the configuration implies against the live rules,
.B apply
commits the difference atomically (one iptables\-restore per family),
verifies it and records it as a generation in the state directory, and
.BR rollback ,
.B destroy
and
.B reconcile
work from those records.
svcnat changes only the chains named with its prefix that it can prove it
wrote, and the jump rules into them; the rules of other programs are left
as they are.
.PP
An apply can be made to undo itself unless confirmed
(\fB\-\-confirm\-timeout\fR) or unless probes pass (\fB\-\-probe\fR), for
changes made over the network the rules serve.
.PP
Flags take one dash or two (\fB\-out\fR, \fB\-\-out\fR).
The README (/usr/share/doc/svcnat/README.md) describes the configuration
language and every command in full.
`

const manExitStatus = `.SH EXIT STATUS
.TP
.B 0
Success; for \fBplan \-\-detailed\-exitcode\fR, no changes.
.TP
.B 1
An error, reported on standard error as \fBsvcnat: error:\fR, often with a
\fBsvcnat: hint:\fR line saying what to do.
.TP
.B 2
\fBplan \-\-detailed\-exitcode\fR: the plan has changes.
.TP
.B 3
\fBfmt \-check\fR: a file is not in canonical form.
`

const manEnvironment = `.TP
.B NO_COLOR
Set to anything, never colour output, as \fB\-\-no\-color\fR.
.TP
.B SVCNAT_NO_SYSTEMD
Set to anything, start the revert watcher of \fBapply \-\-confirm\-timeout\fR
as a detached process even where systemd runs (otherwise a transient
systemd unit, \fBsvcnat\-revert\-\fIID\fR).
.TP
.B SVCNAT_CPUPROFILE
Write a CPU profile of the run to this file (go tool pprof).
.PP
The fleet example's \fBsvcnat\-pull\fR (/usr/lib/svcnat/svcnat\-pull) reads
\fBSVCNAT_REPO\fR, \fBSVCNAT_BRANCH\fR, \fBSVCNAT_CONFIG\fR,
\fBSVCNAT_NODE\fR and \fBSVCNAT_VERIFY_SIGNATURES\fR; see its README.
`

const manFiles = `.SH FILES
The state directory, /var/lib/svcnat unless \fB\-\-state\-dir\fR says
otherwise, must be one only root can change (mode 0700); svcnat follows no
symbolic link in it.
.TP
.I /var/lib/svcnat/state.json
The record: the current generation and those kept (ten), the digests of
their configuration and rules, the backend and chain prefix, an apply
awaiting confirmation, the last apply svcnat undid.
.TP
.IR /var/lib/svcnat/generations/ N . FAMILY .rules
The owned rules after generation \fIN\fR (FAMILY ipv4 or ipv6), which
\fBrollback\fR returns to.
.TP
.I /var/lib/svcnat/lock
Locked by the command changing the rules; holds its process id.
.TP
.I /var/lib/svcnat/applying.json
The chains an apply began to create and has not recorded yet, so that
those a killed apply left are still provably svcnat's.
.TP
.I /var/lib/svcnat/created\-tables.json
The tables svcnat's applies created, which \fBdestroy\fR removes again.
.TP
.IR /var/lib/svcnat/watch\- ID .lock
Held by the revert watcher of the apply \fIID\fR awaiting confirmation.
.TP
.I /var/lib/svcnat/watcher.log
The revert watcher's output when it runs without systemd.
.TP
.I /run/svcnat/
The network namespaces' locks and owner records: which state directory
wrote each chain prefix there. Gone at a reboot, as the rules are.
`

const manExamples = `.SH EXAMPLES
Check and format a configuration directory, and everything below it:
.PP
.EX
svcnat validate \-c /etc/svcnat
svcnat fmt \-check \-diff \-recursive /etc/svcnat
.EE
.PP
Review a plan, then apply exactly that plan:
.PP
.EX
svcnat plan \-c /etc/svcnat \-out /tmp/svcnat.plan
svcnat apply /tmp/svcnat.plan
.EE
.PP
Apply from a remote shell, kept only if confirmed within two minutes:
.PP
.EX
svcnat apply \-c /etc/svcnat \-\-confirm\-timeout 2m
svcnat confirm
.EE
.PP
Follow a packet to a cluster IP through the planned rules:
.PP
.EX
svcnat trace \-c /etc/svcnat \-\-src 192.0.2.7 \-\-dst 10.32.0.61 \-\-dport 80
.EE
.PP
Complete svcnat's commands and flags in bash:
.PP
.EX
source <(svcnat completion bash)
.EE
`

const manSeeAlso = `.SH SEE ALSO
.BR iptables (8),
.BR iptables\-save (8),
.BR iptables\-restore (8),
.BR ip\-netns (8),
.BR conntrack (8),
.BR systemd.service (5)
.PP
/usr/share/doc/svcnat/README.md and the fleet example under
/usr/share/doc/svcnat/examples/fleet.
`
