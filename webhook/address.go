package webhook

import (
	"fmt"
	"net/netip"

	"code.dny.dev/ssrf"
)

// RefusedError says an address is not on the public internet, so tako
// will not send a webhook there. CheckURL returns it when a callback URL
// names or resolves to such an address, and a Client made by NewClient
// returns it (wrapped) when it was about to dial one.
type RefusedError struct {
	Host string     // the hostname that resolved to Addr; empty for an IP literal or a dial
	Addr netip.Addr // the refused address, as written or resolved
	Kind string     // what it is, in words: "loopback", "private", ...
}

// Error reads "refused: 127.0.0.1 is a loopback address", or with a
// hostname, "refused: localhost resolves to 127.0.0.1, a loopback address".
func (e *RefusedError) Error() string {
	if e.Host != "" {
		return fmt.Sprintf("refused: %s resolves to %s, %s %s address", e.Host, e.Addr, article(e.Kind), e.Kind)
	}
	return fmt.Sprintf("refused: %s is %s %s address", e.Addr, article(e.Kind), e.Kind)
}

// article is "a" or "an" for word.
func article(word string) string {
	if word != "" && (word[0] == 'a' || word[0] == 'e' || word[0] == 'i' || word[0] == 'o' || word[0] == 'u') {
		return "an"
	}
	return "a"
}

// namedRanges name the refused ranges a user is likely to meet, most
// specific first. The decision itself is addressGuard's; these give the
// error its words.
var namedRanges = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network (0.0.0.0/8)"},
}

// addressGuard decides which addresses tako refuses to send webhooks to.
type addressGuard struct {
	// guardian holds IANA's special-purpose ranges, as code.dny.dev/ssrf
	// keeps them up to date: it refuses those of IPv4 and everything of
	// IPv6 outside global unicast (2000::/3).
	guardian *ssrf.Guardian
}

// newAddressGuard returns the guard of every public check and dial. Any
// port is allowed: receivers run on ports of their choosing.
func newAddressGuard() addressGuard {
	return addressGuard{guardian: ssrf.New(ssrf.WithAnyPort())}
}

// check returns a *RefusedError when ip is not a public address. An
// IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4
// address it maps, which is where a dial to it goes.
func (g addressGuard) check(ip netip.Addr) error {
	plain := ip.WithZone("").Unmap()
	kind := ""
	for _, r := range namedRanges {
		if r.prefix.Contains(plain) {
			kind = r.kind
			break
		}
	}
	if kind == "" && g.guardian.SafeAddr(plain) != nil {
		kind = "reserved (special-purpose)"
	}
	if kind == "" {
		return nil
	}
	return &RefusedError{Addr: ip, Kind: kind}
}
