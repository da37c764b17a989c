package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/tako-run/tako/jobtypes"
)

func TestNetworkSettings(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
egress:
  allow_private_networks: [172.30.0.0/16]
  hosts: {api.internal.example: 172.30.0.5, Mirror: 172.30.0.6}
job_types:
  quiet: {network: none}
  open: {network: bridge}
  web: {network: {allow: [api.example.com, "*.s3.example.com", "api.internal.example:8443", "*"]}}
`, nil, nil)
	reg, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]jobtypes.Network{"quiet": jobtypes.NetworkNone, "open": jobtypes.NetworkBridge, "web": jobtypes.NetworkAllow, "default": jobtypes.NetworkNone} {
		if jt, _ := reg.Get(name); jt.Network != want {
			t.Errorf("job type %s: network %q, want %q", name, jt.Network, want)
		}
	}
	if web, _ := reg.Get("web"); !reflect.DeepEqual(web.Allow, []string{"api.example.com", "*.s3.example.com", "api.internal.example:8443", "*"}) {
		t.Errorf("web's allowlist: %q", web.Allow)
	}
	if got := cfg.EgressPrivateNetworks(); len(got) != 1 || got[0] != netip.MustParsePrefix("172.30.0.0/16") {
		t.Errorf("private networks: %v", got)
	}
	// A dotted name is one name, not nested blocks; names match in any case.
	if got := cfg.EgressHosts(); len(got) != 2 || got["api.internal.example"] != netip.MustParseAddr("172.30.0.5") || got["mirror"] != netip.MustParseAddr("172.30.0.6") {
		t.Errorf("pinned hosts: %v", got)
	}

	// The environment sets either form.
	cfg = mustLoad(t, "job_types: {web: {network: none}, open: {network: {allow: [a.example]}}}", []string{
		"TAKO_JOB_TYPES_WEB_NETWORK_ALLOW=api.example.com, *.example.org:8443",
		"TAKO_JOB_TYPES_OPEN_NETWORK=bridge",
		"TAKO_EGRESS_HOSTS_mirror=10.0.0.7",
	}, nil)
	if n := cfg.JobTypes["web"].Network; !reflect.DeepEqual(n.Allow, []string{"api.example.com", "*.example.org:8443"}) {
		t.Errorf("web from the environment: %+v", n)
	}
	if n := cfg.JobTypes["open"].Network; n.Mode != "bridge" {
		t.Errorf("open from the environment: %+v", n)
	}
	if got := cfg.EgressHosts(); got["mirror"] != netip.MustParseAddr("10.0.0.7") {
		t.Errorf("a pin from the environment: %v", got)
	}

	// Printed back, each network keeps its form.
	var out strings.Builder
	if err := mustLoad(t, "job_types: {web: {network: {allow: [api.example.com]}}, open: {network: bridge}}", nil, nil).WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "network: bridge") || !strings.Contains(s, "- api.example.com") {
		t.Errorf("printed config:\n%s", s)
	}
}

func TestNetworkSettingErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{"job_types: {web: {network: internet}}", "job_types.web.network"},
		{"security_mode: strict\njob_types: {web: {network: bridge}}", "job_types.web.network: bridge reaches everything the host reaches"},
		{"job_types: {web: {network: bridge, security_mode: strict}}", "security_mode strict"},
		{"job_types: {web: {network: {allow: []}}}", "job_types.web.network.allow: must name at least one host"},
		{"job_types: {web: {network: {allow: [ok.example, 'https://api.example.com']}}}", "job_types.web.network.allow[1]"},
		{"job_types: {web: {network: {allow: ['api.example.com:0']}}}", "job_types.web.network.allow[0]"},
		{"job_types: {web: {network: {allow: ['a.*.example.com']}}}", "job_types.web.network.allow[0]"},
		{"job_types: {web: {network: {deny: [x]}}}", `unknown key "job_types.web.network.deny"`},
		{"egress: {allow_private_networks: [10.0.0.0/33]}", "egress.allow_private_networks[0]"},
		{"egress: {hosts: {api.example.com: not-an-ip}}", "egress.hosts.api.example.com"},
		{"egress: {hosts: {'*.example.com': 10.0.0.1}}", "egress.hosts"},
	} {
		_, err := load(t, tt.yaml, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.yaml, err, tt.want)
		}
	}
	// Strict with an allowlist is fine: the proxy is the way out.
	if _, err := load(t, "security_mode: strict\njob_types: {web: {network: {allow: [api.example.com]}}}", nil, nil); err != nil {
		t.Errorf("strict with an allowlist: %v", err)
	}
}
