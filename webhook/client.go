package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds one delivery attempt when NewClient is given none.
const DefaultTimeout = 15 * time.Second

// Policy says which callback URLs tako accepts. The zero Policy is the
// strict one: https only, public addresses only.
type Policy struct {
	// AllowHTTP accepts http:// URLs as well as https://.
	AllowHTTP bool
	// AllowPrivateNetworks accepts, and dials, loopback, private,
	// link-local and other non-public addresses. It is for development
	// and for receivers on the operator's own network.
	AllowPrivateNetworks bool
}

// CheckURL checks a callback URL when a job is submitted. Its error reads
// after a field name ("callback_url: must use https://") and says what is
// wrong: not an absolute http or https URL, http:// without
// p.AllowHTTP, a user name or password in it, or (without
// p.AllowPrivateNetworks) a host that is, or resolves to, a refused
// address (a *RefusedError). A hostname is refused when any of its
// addresses is refused; when it does not resolve, CheckURL lets it pass,
// since the dial re-checks every address anyway.
func CheckURL(ctx context.Context, raw string, p Policy) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "":
		return errors.New("must be an absolute http:// or https:// URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("must be an http:// or https:// URL, not %s://", u.Scheme)
	case u.Scheme == "http" && !p.AllowHTTP:
		return errors.New("must use https:// (http:// is not allowed)")
	case u.User != nil:
		return errors.New("must not contain a user name or password")
	case u.Hostname() == "":
		return errors.New("must name a host")
	}
	if p.AllowPrivateNetworks {
		return nil
	}
	g := newAddressGuard()
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.check(ip)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil // best effort: DNS may be down now and fine at delivery
	}
	for _, ip := range addrs {
		// The resolver answers an IPv4 name as IPv4-mapped IPv6: say it
		// as it is written.
		if err := g.check(ip.Unmap()); err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) {
				refused.Host = host
			}
			return err
		}
	}
	return nil
}

// NewClient returns the HTTP client Deliver sends with. It never uses a
// proxy from the environment and never follows a redirect (the 3xx is the
// attempt's answer). Unless p.AllowPrivateNetworks, its dialer checks each
// address it is about to connect to, after resolution, and refuses a
// non-public one with a *RefusedError before any packet is sent: the
// address checked is the address dialed. Each request, body included,
// takes at most timeout (DefaultTimeout when zero or less). The client is
// safe for concurrent use; call CloseIdleConnections when done with it.
func NewClient(p Policy, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !p.AllowPrivateNetworks {
		dialer.Control = newAddressGuard().dialControl
	}
	// A fresh transport, not a clone of http.DefaultTransport, which
	// another package may have replaced or wrapped.
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial the receiver, past the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// dialControl is a net.Dialer's Control: it runs after the name is
// resolved and the socket made, before connect, with the very address
// about to be dialed.
func (g addressGuard) dialControl(network, address string, _ syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return fmt.Errorf("refused: %s is not a TCP network", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused: cannot parse dialed address %q: %w", address, err)
	}
	return g.check(ap.Addr())
}
