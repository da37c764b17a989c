package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
)

// fakeDNS answers every name with one address and records what it was
// asked.
type fakeDNS struct{ asked []string }

func (f *fakeDNS) LookupPort(context.Context, string, string) (int, error) { return 8080, nil }

func (f *fakeDNS) LookupIP(_ context.Context, _, host string) ([]net.IP, error) {
	f.asked = append(f.asked, host)
	return []net.IP{net.ParseIP("203.0.113.7")}, nil
}

func TestPinnedResolver(t *testing.T) {
	t.Parallel()
	dns := &fakeDNS{}
	r, err := newResolver(map[string]netip.Addr{
		"Allowed.Test":  netip.MustParseAddr("172.30.0.2"),
		"private.test.": netip.MustParseAddr("10.255.255.1"),
		"v6.test":       netip.MustParseAddr("2001:db8::5"),
	}, dns)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		network, host, want string // want "" means no address
	}{
		{"ip", "allowed.test", "172.30.0.2"},
		{"ip", "ALLOWED.TEST.", "172.30.0.2"},
		{"ip4", "private.test", "10.255.255.1"},
		{"ip6", "private.test", ""},
		{"ip", "v6.test", "2001:db8::5"},
		{"ip4", "v6.test", ""},
		{"ip", "other.test", "203.0.113.7"},
	}
	for _, tt := range tests {
		ips, err := r.LookupIP(context.Background(), tt.network, tt.host)
		if tt.want == "" {
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				t.Errorf("LookupIP(%s, %s) = %v, %v; want not found", tt.network, tt.host, ips, err)
			}
			continue
		}
		if err != nil || len(ips) != 1 || ips[0].String() != tt.want {
			t.Errorf("LookupIP(%s, %s) = %v, %v; want %s", tt.network, tt.host, ips, err, tt.want)
		}
	}
	if !slices.Equal(dns.asked, []string{"other.test"}) {
		t.Errorf("DNS was asked about %v, want only other.test", dns.asked)
	}
}

func TestPinnedResolverRefusesBadPins(t *testing.T) {
	t.Parallel()
	for name, addr := range map[string]netip.Addr{"no-address.test": {}, "bad name.test": netip.MustParseAddr("10.0.0.1")} {
		if _, err := newResolver(map[string]netip.Addr{name: addr}, &fakeDNS{}); err == nil {
			t.Errorf("pin %q → %v: no error", name, addr)
		}
	}
}
