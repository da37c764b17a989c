package egress

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/stripe/smokescreen/pkg/smokescreen"
)

// errorHeader is the response header smokescreen explains a rejection in.
const errorHeader = "X-Smokescreen-Error"

// rejected is smokescreen's RejectResponseHandlerWithCtx, the one place
// that turns a request the proxy does not carry out into its response and
// its audit:
//
//   - without valid credentials: 407 Proxy Authentication Required,
//     not audited;
//   - refused by policy (the allowlist, a private or metadata address):
//     403 Forbidden, with the reason in a plain-text body, audited as
//     refused;
//   - allowed, but the destination could not be resolved or connected:
//     smokescreen's status (502, 504, ...), with the reason in the body,
//     audited as failed.
func (p *proxy) rejected(sctx *smokescreen.SmokescreenContext, resp *http.Response) {
	d := sctx.Decision
	if resp.StatusCode != http.StatusProxyAuthRequired {
		reason := p.settle(d, ResultFailed, failureReason(d, resp))
		respond(resp, resp.StatusCode, "tako egress: "+reason)
		return
	}
	if !p.credentialed(d, resp.Request) {
		respond(resp, http.StatusProxyAuthRequired, "tako egress: proxy credentials are missing, wrong or withdrawn")
		resp.Header.Set("Proxy-Authenticate", `Basic realm="tako egress"`)
		return
	}
	reason := refusalReason(d)
	p.settle(d, ResultRefused, reason)
	respond(resp, http.StatusForbidden, "tako egress: "+reason)
}

// credentialed reports whether a rejected request carried valid
// credentials: smokescreen found its role, or, when it rejected the
// request before looking (a malformed destination), the credentials check
// out.
func (p *proxy) credentialed(d *smokescreen.ACLDecision, r *http.Request) bool {
	if d != nil {
		return d.Role != ""
	}
	if r == nil {
		return false
	}
	_, _, err := p.identify(r)
	return err == nil
}

// settle gives the attempt of decision d its outcome, when d is a lease's
// and the attempt has none yet, and returns the reason to give: the
// attempt's own when it was settled before with the same result (the dial
// knows best why it failed), reason otherwise.
func (p *proxy) settle(d *smokescreen.ACLDecision, result, reason string) string {
	if d == nil || d.Role == "" {
		return reason
	}
	c := p.client(d.Role)
	if c == nil || c.lease == nil {
		return reason
	}
	rec := c.lease.record(d.Project)
	if rec == nil {
		return reason
	}
	if got := c.lease.settle(rec, result, reason); got.Result == result && got.Reason != "" {
		return got.Reason
	}
	return reason
}

// respond replaces resp's status and body with code and a plain-text
// message.
func respond(resp *http.Response, code int, msg string) {
	body := msg + "\n"
	resp.StatusCode = code
	resp.Status = http.StatusText(code)
	resp.Body = io.NopCloser(strings.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp.Header.Set(errorHeader, msg)
}

// deniedAddress finds the address and smokescreen's rule in the reason of
// a destination refused after resolution, as in "no valid IP found among
// resolved addresses - 10.0.0.5 denied by rule 'Deny: Private Range'".
var deniedAddress = regexp.MustCompile(`(\S+) denied by rule '([^']*)'`)

// refusalReason is why the proxy refused a request with valid
// credentials: the allowlist's verdict (the decider's reason as it is), or
// what is wrong with the address the destination resolved to.
func refusalReason(d *smokescreen.ACLDecision) string {
	switch {
	case d == nil:
		return "the destination is not a valid host and port"
	case strings.HasPrefix(d.Reason, "Destination host cannot be determined"):
		return "the proxy does not reach IPv6 addresses"
	}
	if m := deniedAddress.FindStringSubmatch(d.Reason); m != nil {
		if ip, err := netip.ParseAddr(m[1]); err == nil {
			host, _, _ := net.SplitHostPort(d.OutboundHost)
			return describeRefused(normalizeHost(host), ip.Unmap(), m[2])
		}
	}
	return d.Reason
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// metadata are the cloud providers' instance metadata addresses.
var metadata = []netip.Addr{netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254")}

// describeRefused says why host, which resolved to ip, was refused:
// "10.0.0.5 is a private address", "db.test resolves to 10.0.0.5, a
// private address". rule is smokescreen's classification.
func describeRefused(host string, ip netip.Addr, rule string) string {
	var kind string
	switch {
	case strings.Contains(rule, "Self Connection"):
		kind = "the proxy's own address"
	case strings.Contains(rule, "IPv6 Embedding"):
		kind = "an IPv6 address that embeds an IPv4 address"
	case ip.IsUnspecified():
		kind = "an unspecified address"
	case ip.IsLoopback():
		kind = "a loopback address"
	case ip == metadata[0] || ip == metadata[1]:
		kind = "the cloud metadata address"
	case ip.IsLinkLocalUnicast():
		kind = "a link-local address"
	case cgnat.Contains(ip):
		kind = "a CGNAT address"
	case ip.IsPrivate():
		kind = "a private address"
	case !ip.IsGlobalUnicast():
		kind = "not a unicast address"
	default:
		kind = "an address the proxy does not reach"
	}
	if host == ip.String() {
		return fmt.Sprintf("%s is %s", ip, kind)
	}
	return fmt.Sprintf("%s resolves to %s, %s", host, ip, kind)
}

// failureReason is why an allowed request did not reach its destination.
func failureReason(d *smokescreen.ACLDecision, resp *http.Response) string {
	dest := ""
	if d != nil {
		dest = d.OutboundHost
	}
	msg := strings.TrimSpace(resp.Header.Get(errorHeader))
	switch {
	case strings.HasPrefix(msg, "Failed to resolve remote hostname"):
		host, _, _ := net.SplitHostPort(dest)
		return host + " could not be resolved"
	case resp.StatusCode == http.StatusGatewayTimeout:
		return "timed out connecting to " + dest
	case resp.StatusCode == http.StatusBadGateway:
		return "could not connect to " + dest
	}
	if msg == "" {
		return "the proxy could not carry out the request"
	}
	// Smokescreen's own message, as in "An unexpected error occurred: ...",
	// in the lower case of the other reasons.
	return strings.ToLower(msg[:1]) + msg[1:]
}
