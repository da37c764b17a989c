package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/stripe/smokescreen/pkg/smokescreen"
)

// pinnedResolver is the proxy's resolver: the operator's pinned names
// first, then DNS. It implements smokescreen.Resolver.
type pinnedResolver struct {
	pins map[string]netip.Addr // by normalised name
	dns  smokescreen.Resolver
}

// newResolver returns a resolver that answers the names in pins, in any
// case and with or without a trailing dot, with their address, and asks
// dns about the rest. A pin with an invalid address or name is an error.
func newResolver(pins map[string]netip.Addr, dns smokescreen.Resolver) (pinnedResolver, error) {
	r := pinnedResolver{pins: make(map[string]netip.Addr, len(pins)), dns: dns}
	for name, addr := range pins {
		if !addr.IsValid() {
			return pinnedResolver{}, fmt.Errorf("egress: pinned host %q has no address", name)
		}
		n := normalizeHost(name)
		if err := checkDNSName(n); err != nil {
			return pinnedResolver{}, fmt.Errorf("egress: pinned host: %w", err)
		}
		r.pins[n] = addr.Unmap()
	}
	return r, nil
}

// LookupPort implements smokescreen.Resolver.
func (r pinnedResolver) LookupPort(ctx context.Context, network, service string) (int, error) {
	return r.dns.LookupPort(ctx, network, service)
}

// LookupIP implements smokescreen.Resolver: a pinned name resolves to its
// pin alone, and to nothing when network ("ip4", "ip6") excludes it.
func (r pinnedResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, error) {
	addr, ok := r.pins[normalizeHost(host)]
	if !ok {
		return r.dns.LookupIP(ctx, network, host)
	}
	if network == "ip4" && !addr.Is4() || network == "ip6" && !addr.Is6() {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []net.IP{addr.AsSlice()}, nil
}
