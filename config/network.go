package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strings"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/egress"
)

// NetworkConfig is a job type's network as written in tako.yaml: "none",
// "bridge", or a block {allow: [hosts]} that reaches only those hosts,
// through tako's egress proxy.
type NetworkConfig struct {
	// Mode is "none" or "bridge" when the network is written as a word,
	// and "" for the allow block or when the key is unset.
	Mode string `koanf:"-"`
	// Allow is the allowlist: host, *.domain or host:port entries, "*"
	// for any public host.
	Allow []string `koanf:"allow"`
}

// EgressConfig governs the egress proxy that allowlisted job types reach
// their hosts through.
type EgressConfig struct {
	// AllowPrivateNetworks are CIDRs that allowlisted hosts may resolve
	// to although they are private (RFC 1918, loopback, link-local):
	// internal services. Everything else private stays refused.
	AllowPrivateNetworks []string `koanf:"allow_private_networks"`
	// Hosts pins names to addresses for the proxy, ahead of DNS: for
	// split-horizon setups and tests.
	Hosts HostPins `koanf:"hosts"`
}

// HostPins maps host names to IP addresses. Its keys hold dots, which the
// configuration tree splits into nested blocks: decodeHostPins joins them
// again.
type HostPins map[string]string

// decodeHostPins flattens the nested blocks that a name such as
// "api.example.com" becomes in the configuration tree back into one key.
func decodeHostPins(data any) (any, error) {
	tree, ok := data.(map[string]any)
	if !ok {
		return data, nil
	}
	out := HostPins{}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, v := range m {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			switch v := v.(type) {
			case map[string]any:
				if err := walk(name, v); err != nil {
					return err
				}
			case string:
				out[name] = v
			default:
				return fmt.Errorf("%s: expected an IP address, got %T", name, v)
			}
		}
		return nil
	}
	return out, walk("", tree)
}

// written reports whether the network key was set at all.
func (n NetworkConfig) written() bool { return n.Mode != "" || n.Allow != nil }

// String renders n as it is written: the mode, or allow: [...].
func (n NetworkConfig) String() string {
	if n.Mode != "" {
		return n.Mode
	}
	return "{allow: [" + strings.Join(n.Allow, ", ") + "]}"
}

// networkConfigOf writes a job type's network back in tako.yaml's shape.
func networkConfigOf(jt jobtypes.JobType) NetworkConfig {
	if jt.Network == jobtypes.NetworkAllow {
		return NetworkConfig{Allow: jt.Allow}
	}
	return NetworkConfig{Mode: string(jt.Network)}
}

// decodeNetwork turns the word form of a job type's network into a
// NetworkConfig; the block form decodes as a struct.
func decodeNetwork(data any) (any, error) {
	if s, ok := data.(string); ok {
		return NetworkConfig{Mode: s}, nil
	}
	return data, nil
}

// networkTree is toTree for a NetworkConfig: the word, or the block.
func networkTree(v reflect.Value) any {
	n := v.Interface().(NetworkConfig)
	if n.Mode != "" || n.Allow == nil {
		return n.Mode
	}
	allow := make([]any, len(n.Allow))
	for i, a := range n.Allow {
		allow[i] = a
	}
	return map[string]any{"allow": allow}
}

// validateNetwork checks a job type's network: a known word, or an
// allowlist of well-formed entries; bridge only outside strict mode.
func validateNetwork(p *problems, key string, n NetworkConfig, mode string) {
	switch {
	case !n.written():
	case n.Mode != "":
		p.oneOf(key, n.Mode, string(jobtypes.NetworkNone), string(jobtypes.NetworkBridge))
		if n.Mode == string(jobtypes.NetworkBridge) && mode == string(jobtypes.Strict) {
			p.add(key, "bridge reaches everything the host reaches, which security_mode strict does not allow: use {allow: [hosts]}, or none")
		}
	case len(n.Allow) == 0:
		p.add(key+".allow", "must name at least one host (host, *.domain, host:port, or * for any public host); for no network write network: none")
	default:
		for i, entry := range n.Allow {
			if _, err := egress.ParseRule(entry); err != nil {
				p.add(fmt.Sprintf("%s.allow[%d]", key, i), "%v", err)
			}
		}
	}
}

// validateEgress checks the egress block: CIDRs, and names pinned to
// addresses.
func (c *Config) validateEgress(p *problems) {
	for i, cidr := range c.Egress.AllowPrivateNetworks {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			p.add(fmt.Sprintf("egress.allow_private_networks[%d]", i), "%q is not a CIDR such as 10.1.0.0/16", cidr)
		}
	}
	names := make([]string, 0, len(c.Egress.Hosts))
	for name := range c.Egress.Hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if r, err := egress.ParseRule(name); err != nil || strings.Contains(r.Name, "*") || len(r.Ports) > 0 {
			p.add("egress.hosts", "%q is not a host name", name)
			continue
		}
		if _, err := netip.ParseAddr(c.Egress.Hosts[name]); err != nil {
			p.add("egress.hosts."+name, "%q is not an IP address", c.Egress.Hosts[name])
		}
	}
}

// EgressPrivateNetworks returns egress.allow_private_networks parsed;
// Validate has checked them.
func (c *Config) EgressPrivateNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, cidr := range c.Egress.AllowPrivateNetworks {
		if p, err := netip.ParsePrefix(cidr); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// EgressHosts returns egress.hosts parsed, names in lower case; Validate
// has checked them.
func (c *Config) EgressHosts() map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(c.Egress.Hosts))
	for name, addr := range c.Egress.Hosts {
		if a, err := netip.ParseAddr(addr); err == nil {
			out[strings.ToLower(name)] = a
		}
	}
	return out
}
