package jobtypes

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

var (
	// requirementPattern is a PEP 508 requirement without a direct
	// reference: a project name, optional extras and optional version
	// specifiers (bare or in parentheses). The marker, after ';', is
	// checked on its own.
	requirementPattern = regexp.MustCompile(`^` +
		`(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)` +
		`[ \t]*(?:\[[ \t]*(?:` + pyName + `(?:[ \t]*,[ \t]*` + pyName + `)*)?[ \t]*\])?` +
		`[ \t]*(?:` + specList + `|\([ \t]*` + specList + `[ \t]*\))?` +
		`[ \t]*$`)

	// archiveSuffix marks a "name" that pip would install as a local file.
	archiveSuffix = regexp.MustCompile(`(?i)\.(whl|zip|tar|tgz|tbz|txz|tlz|tar\.(gz|bz2|xz|lz|lzma))$`)

	// markerToken is one token of an environment marker.
	markerToken = regexp.MustCompile(`^(?:` +
		`[ \t]+` + // space
		`|===|~=|==|!=|<=|>=|<|>` + // comparison
		`|[()]` +
		`|'[^'\\\n\r]*'|"[^"\\\n\r]*"` + // string
		`|[A-Za-z_][A-Za-z0-9_.]*` + // variable or and/or/in/not
		`)`)
)

const (
	pyName   = `[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`
	spec     = `(?:(?:~=|==|!=|<=|>=|<|>)[ \t]*[vV]?[0-9][A-Za-z0-9_.*+!-]*|===[ \t]*[A-Za-z0-9_.*+!-]+)`
	specList = spec + `(?:[ \t]*,[ \t]*` + spec + `)*`
)

// maxRequirementLen bounds a requirement's length. PEP 508 sets no limit,
// but real requirements, markers included, stay well under 200 bytes, and
// matching the grammar costs about 0.3 µs a byte: unbounded, the entries of
// one 2 MiB request body would take over half a second of CPU to check.
const maxRequirementLen = 512

// ValidateRequirement checks that req is a pip requirement tako can bake into
// an image safely: at most 512 bytes of a PEP 508 project name with optional
// extras ("pkg[a,b]"), optional version specifiers ("==1.2", ">=1,<2",
// "~=1.4") and an optional environment marker ("; python_version >=
// '3.11'"). It rejects everything else pip would also accept: options
// ("-r", "-e", "--index-url"), also as a later blank-separated word, URLs,
// local paths and archives, direct references ("pkg @ url"), and any shell
// metacharacter, control character or line break. The error says what is
// wrong, not where.
func ValidateRequirement(req string) error {
	if len(req) > maxRequirementLen {
		return fmt.Errorf("requirement is longer than %d bytes", maxRequirementLen)
	}
	if strings.ContainsAny(req, "\n\r\x00") {
		return errors.New("requirement must be a single line")
	}
	r := strings.TrimSpace(req)
	switch {
	case r == "":
		return errors.New("requirement is empty")
	case strings.HasPrefix(r, "-"):
		return fmt.Errorf("requirement %q is a pip option; only package requirements are allowed", req)
	case strings.IndexFunc(r, unicode.IsControl) >= 0:
		// A tab or an escape inside a marker's string would pass the
		// grammar; the image builder refuses them.
		return fmt.Errorf("requirement %q contains a control character", req)
	}

	spec, marker, hasMarker := strings.Cut(r, ";")
	switch {
	case strings.Contains(spec, "@"):
		return fmt.Errorf("requirement %q is a direct reference (name @ url); only index packages are allowed", req)
	case strings.Contains(r, "://"):
		return fmt.Errorf("requirement %q is a URL; only package requirements are allowed", req)
	}
	if strings.ContainsAny(spec, "/\\") || strings.HasPrefix(spec, ".") || strings.HasPrefix(spec, "~") {
		return fmt.Errorf("requirement %q is a path; only package requirements are allowed", req)
	}
	m := requirementPattern.FindStringSubmatch(spec)
	if m == nil {
		return fmt.Errorf("requirement %q is not a package name with optional [extras] and version specifiers such as ==1.2 or >=1,<2", req)
	}
	if name := m[requirementPattern.SubexpIndex("name")]; archiveSuffix.MatchString(name) {
		return fmt.Errorf("requirement %q is an archive file; only package requirements are allowed", req)
	}
	if hasMarker {
		if err := validateMarker(marker); err != nil {
			return fmt.Errorf("requirement %q: %w", req, err)
		}
	}
	// "pkg === -rfoo" and a marker string such as ' --index-url x' fit the
	// grammar, but a requirements file would read the word as an option.
	for _, word := range strings.Fields(r) {
		if strings.HasPrefix(word, "-") {
			return fmt.Errorf("requirement %q carries the pip option %q; only package requirements are allowed", req, word)
		}
	}
	return nil
}

// validateMarker checks a PEP 508 environment marker: comparisons of marker
// variables and quoted strings, joined by "and" and "or", in parentheses.
func validateMarker(marker string) error {
	// No marker needs these, and they are what would make a requirement
	// dangerous if it ever reached a shell.
	if i := strings.IndexAny(marker, "`$|&;\\"); i >= 0 {
		return fmt.Errorf("marker: %q is not allowed", marker[i:i+1])
	}
	var tokens []string
	for rest := marker; rest != ""; {
		tok := markerToken.FindString(rest)
		if tok == "" {
			return fmt.Errorf("marker: unexpected %q", rest[:1])
		}
		rest = rest[len(tok):]
		if strings.TrimSpace(tok) != "" {
			tokens = append(tokens, tok)
		}
	}
	p := markerParser{tokens: tokens}
	if len(tokens) == 0 {
		return errors.New("marker is empty")
	}
	if err := p.or(); err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	if !p.done() {
		return fmt.Errorf("marker: unexpected %q", p.tokens[p.pos])
	}
	return nil
}

// markerParser is a recursive-descent parser of PEP 508's marker grammar.
type markerParser struct {
	tokens []string
	pos    int
}

func (p *markerParser) done() bool { return p.pos >= len(p.tokens) }

func (p *markerParser) peek() string {
	if p.done() {
		return ""
	}
	return p.tokens[p.pos]
}

// or parses: and ("or" and)*.
func (p *markerParser) or() error {
	if err := p.and(); err != nil {
		return err
	}
	for p.peek() == "or" {
		p.pos++
		if err := p.and(); err != nil {
			return err
		}
	}
	return nil
}

// and parses: expr ("and" expr)*.
func (p *markerParser) and() error {
	if err := p.expr(); err != nil {
		return err
	}
	for p.peek() == "and" {
		p.pos++
		if err := p.expr(); err != nil {
			return err
		}
	}
	return nil
}

// expr parses: "(" or ")" | value op value.
func (p *markerParser) expr() error {
	if p.peek() == "(" {
		p.pos++
		if err := p.or(); err != nil {
			return err
		}
		if p.peek() != ")" {
			return errors.New("missing )")
		}
		p.pos++
		return nil
	}
	if err := p.value(); err != nil {
		return err
	}
	switch op := p.peek(); op {
	case "===", "~=", "==", "!=", "<=", ">=", "<", ">", "in":
		p.pos++
	case "not":
		p.pos++
		if p.peek() != "in" {
			return errors.New(`expected "in" after "not"`)
		}
		p.pos++
	default:
		return fmt.Errorf("expected a comparison, got %q", op)
	}
	return p.value()
}

// value parses a marker variable or a quoted string.
func (p *markerParser) value() error {
	tok := p.peek()
	switch {
	case tok == "":
		return errors.New("unexpected end")
	case tok[0] == '\'' || tok[0] == '"':
	case markerVariable(tok):
	default:
		return fmt.Errorf("unknown marker variable %q", tok)
	}
	p.pos++
	return nil
}

// markerVariable reports whether name is a marker variable PEP 508 or its
// successors define.
func markerVariable(name string) bool {
	switch name {
	case "python_version", "python_full_version", "os_name", "sys_platform",
		"platform_release", "platform_system", "platform_version",
		"platform_machine", "platform_python_implementation",
		"implementation_name", "implementation_version",
		"extra", "extras", "dependency_groups",
		// Deprecated spellings pip still accepts.
		"os.name", "sys.platform", "platform.version", "platform.machine",
		"platform.python_implementation", "python_implementation":
		return true
	}
	return false
}
