package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Host is one allowlist entry: a destination and the ports allowed on it.
type Host struct {
	// Name is an exact DNS name or IP address; "*.domain", any name
	// strictly below domain (a.domain and b.a.domain, not domain itself);
	// or "*", any host. Names match case-insensitively and without one
	// trailing dot.
	Name string
	// Ports are the ports allowed; nil or empty means 80 and 443.
	Ports []int
}

// defaultPorts are the ports of an entry that names none.
var defaultPorts = []int{80, 443}

// String renders h in the syntax ParseRule reads: "name" when it names
// no port, "name:port" for one port. Several ports are joined with commas
// ("name:80,8080"), a form ParseRule does not read.
func (h Host) String() string {
	name := h.Name
	if a, err := netip.ParseAddr(name); err == nil && a.Is6() && len(h.Ports) > 0 {
		name = "[" + name + "]"
	}
	if len(h.Ports) == 0 {
		return name
	}
	ports := make([]string, len(h.Ports))
	for i, p := range h.Ports {
		ports[i] = strconv.Itoa(p)
	}
	return name + ":" + strings.Join(ports, ",")
}

// ParseRule parses one allowlist entry as the configuration and job
// requests write it: "host", "*.domain", "*", "host:port",
// "*.domain:port" or "[v6addr]:port". The result's Name is lower case,
// without a trailing dot; its Ports are nil (80 and 443) or the one port
// given. The error names what is wrong with entry.
func ParseRule(entry string) (Host, error) {
	s := strings.TrimSpace(entry)
	switch {
	case s == "":
		return Host{}, errors.New("empty allowlist entry")
	case strings.Contains(s, "://"):
		return Host{}, fmt.Errorf("allowlist entry %q is a URL: write the host and port without the scheme", entry)
	case strings.ContainsAny(s, "/?#@"):
		return Host{}, fmt.Errorf("allowlist entry %q has more than a host and port", entry)
	}
	host, port, err := splitEntry(s)
	if err != nil {
		return Host{}, fmt.Errorf("allowlist entry %q: %w", entry, err)
	}
	name, err := checkName(host)
	if err != nil {
		return Host{}, fmt.Errorf("allowlist entry %q: %w", entry, err)
	}
	h := Host{Name: name}
	if port != "" {
		n, err := strconv.Atoi(port)
		switch {
		case err != nil || strings.ContainsAny(port, "+-"):
			return Host{}, fmt.Errorf("allowlist entry %q: port %q is not a number", entry, port)
		case n < 1 || n > 65535:
			return Host{}, fmt.Errorf("allowlist entry %q: port %d is out of range 1-65535", entry, n)
		}
		h.Ports = []int{n}
	}
	return h, nil
}

// splitEntry splits an entry into its host and port ("" when it has
// none). An IPv6 address with a port must be in brackets.
func splitEntry(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", errors.New("no closing bracket")
		}
		host, rest := s[1:end], s[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "", "", fmt.Errorf("%q in brackets is not an IPv6 address", host)
		}
		switch {
		case rest == "":
			return host, "", nil
		case strings.HasPrefix(rest, ":") && len(rest) > 1:
			return host, rest[1:], nil
		}
		return "", "", fmt.Errorf("%q after the brackets is not a port", rest)
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", nil
	case 1:
		host, port, _ := strings.Cut(s, ":")
		if host == "" {
			return "", "", errors.New("no host before the port")
		}
		if port == "" {
			return "", "", errors.New("no port after the colon")
		}
		return host, port, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is6() && a.Zone() == "" {
		return s, "", nil
	}
	return "", "", errors.New("an IPv6 address goes in brackets when it has a port, as in [2001:db8::1]:443")
}

// checkName checks a host part: "*", "*.domain", an IP address or a DNS
// name, and returns it normalised.
func checkName(host string) (string, error) {
	if host == "*" {
		return host, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("address %q has a zone", host)
		}
		return a.Unmap().String(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	domain, wild := strings.CutPrefix(name, "*.")
	if strings.Contains(domain, "*") {
		return "", fmt.Errorf("the wildcard in %q must be the whole first label, as in *.example.com", host)
	}
	if err := checkDNSName(domain); err != nil {
		return "", err
	}
	if wild {
		return "*." + domain, nil
	}
	return domain, nil
}

// checkDNSName checks that name, in lower case without a trailing dot,
// can be a DNS host name.
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("no host name")
	}
	if len(name) > 253 {
		return fmt.Errorf("host name %q is longer than 253 characters", name)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("host name %q has an empty label", name)
		}
		if len(label) > 63 {
			return fmt.Errorf("host name %q has a label longer than 63 characters", name)
		}
		if i := strings.IndexFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}); i >= 0 {
			return fmt.Errorf("host name %q has %q, which a host name cannot have (write international names in their xn-- form)", name, []rune(label[i:])[0])
		}
	}
	return nil
}

// Covers reports whether outer allows everything inner allows: every host
// inner matches, outer matches, on every port inner allows. "*" covers
// every entry, "*.example.com" covers "a.example.com" and
// "*.b.example.com", an exact name covers only itself; nil ports mean 80
// and 443 on either side.
func Covers(outer, inner Host) bool {
	o, i := compile(outer), compile(inner)
	var names bool
	switch o.kind {
	case matchAny:
		names = true
	case matchExact:
		names = i.kind == matchExact && i.name == o.name
	case matchBelow:
		names = (i.kind == matchExact && o.below(i.name)) || (i.kind == matchBelow && (i.name == o.name || o.below(i.name)))
	}
	if !names {
		return false
	}
	for _, p := range i.ports {
		if !slices.Contains(o.ports, p) {
			return false
		}
	}
	return true
}

// matchKind is how a rule matches host names.
type matchKind int

const (
	matchExact matchKind = iota // the one name or address
	matchBelow                  // names strictly below a domain
	matchAny                    // every host
)

// rule is a Host ready to match requests.
type rule struct {
	kind  matchKind
	name  string // the exact name, or the domain for matchBelow
	ports []int  // never empty
	text  string // the entry as written, for the audit
}

// compile turns h into a rule.
func compile(h Host) rule {
	r := rule{kind: matchExact, name: normalizeHost(h.Name), ports: h.Ports, text: h.String()}
	if len(r.ports) == 0 {
		r.ports = defaultPorts
	}
	switch {
	case r.name == "*":
		r.kind = matchAny
	case strings.HasPrefix(r.name, "*."):
		r.kind, r.name = matchBelow, r.name[2:]
	}
	return r
}

// compileAll compiles hosts.
func compileAll(hosts []Host) []rule {
	rules := make([]rule, len(hosts))
	for i, h := range hosts {
		rules[i] = compile(h)
	}
	return rules
}

// matches reports whether r allows host, normalised, on port.
func (r rule) matches(host string, port int) bool {
	if !slices.Contains(r.ports, port) {
		return false
	}
	switch r.kind {
	case matchAny:
		return true
	case matchBelow:
		return r.below(host)
	}
	return host == r.name
}

// below reports whether name is strictly below r's domain. An address is
// below no domain.
func (r rule) below(name string) bool {
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	return len(name) > len(r.name)+1 && strings.HasSuffix(name, "."+r.name)
}

// normalizeHost is a host name in the form rules compare: lower case,
// without one trailing dot or IPv6 brackets, an address in its canonical
// form.
func normalizeHost(host string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// hostPort joins a host and port for messages.
func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
