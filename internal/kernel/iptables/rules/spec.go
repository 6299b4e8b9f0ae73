package rules

// Spec is a rule's structure, as the one parser (the canonicalizer's)
// reads it: the header options, the matches in order, and the target.
// Evaluators (svcnat trace) and views read rules through it rather than
// parsing arguments again.
type Spec struct {
	// The header options; Name is "" when the rule has none.
	Source, Destination, InInterface, OutInterface, Protocol Option
	Matches                                                  []Match
	// Target is the -j or -g target ("" for a rule without one); Goto
	// says it was -g.
	Target        string
	Goto          bool
	TargetOptions []Option
}

// Option is one option: "! --name v1 v2" is {Negated, "--name", [v1 v2]}.
type Option struct {
	Negated bool
	Name    string
	Values  []string
}

// Value is the option's first value ("" when it has none).
func (o Option) Value() string {
	if len(o.Values) == 0 {
		return ""
	}
	return o.Values[0]
}

// Match is one -m module and its options. Options iptables loads a match
// for implicitly (--dport after -p tcp) are under that match.
type Match struct {
	Module  string
	Options []Option
}

// Option returns the match's option name, if given.
func (m Match) Option(name string) (Option, bool) { return find(m.Options, name) }

// TargetOption returns the target's option name, if given.
func (s Spec) TargetOption(name string) (Option, bool) { return find(s.TargetOptions, name) }

func find(opts []Option, name string) (Option, bool) {
	for _, o := range opts {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

// ParseSpec parses the rule's arguments.
func ParseSpec(r Rule) (Spec, error) {
	p, err := parseArgs(r.Args)
	if err != nil {
		return Spec{}, err
	}
	conv := func(o option) Option { return Option{Negated: o.neg, Name: o.name, Values: o.vals} }
	convAll := func(os []option) []Option {
		out := make([]Option, len(os))
		for i, o := range os {
			out[i] = conv(o)
		}
		return out
	}
	s := Spec{
		Source: conv(p.header[0]), Destination: conv(p.header[1]), InInterface: conv(p.header[2]),
		OutInterface: conv(p.header[3]), Protocol: conv(p.header[4]),
		Target: p.target, Goto: p.jump == "-g", TargetOptions: convAll(p.targetOpts),
	}
	for _, m := range p.matches {
		s.Matches = append(s.Matches, Match{Module: m.name, Options: convAll(m.opts)})
	}
	return s, nil
}
