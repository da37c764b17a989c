package api

import (
	"mime"
	"net"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"

	"github.com/tako-run/tako/jobs"
)

// The defences in this file keep web browsers from driving the API on a
// user's behalf. A page on any site can make the browser send a request to
// 127.0.0.1:8000, and with DNS rebinding (its own name resolving to
// 127.0.0.1) read the answer too. A browser always names the site it
// thinks it talks to in the Host header, cannot send a cross-site
// application/json body without asking first (CORS preflight), and names
// the page that sent a request in Origin.

// hostPolicy is the set of Host header values the server answers. The
// zero value answers any host.
type hostPolicy struct {
	any       bool
	names     map[string]bool // host, any port
	hostPorts map[string]bool // host:port
	suffixes  []string        // ".example.com", any port
}

// newHostPolicy parses allowed, entries such as "localhost", "127.0.0.1",
// "[::1]", "api.example.com:8443", "*.example.com" or "*" (any host). An
// empty list answers any host: the caller decides the default (see
// config's AllowedHosts).
func newHostPolicy(allowed []string) hostPolicy {
	p := hostPolicy{any: len(allowed) == 0, names: map[string]bool{}, hostPorts: map[string]bool{}}
	for _, entry := range allowed {
		entry = strings.ToLower(strings.TrimSpace(entry))
		switch {
		case entry == "*":
			p.any = true
		case strings.HasPrefix(entry, "*."):
			p.suffixes = append(p.suffixes, entry[1:])
		default:
			host, port := splitHost(entry)
			if port == "" {
				p.names[host] = true
			} else {
				p.hostPorts[net.JoinHostPort(host, port)] = true
			}
		}
	}
	return p
}

// allows reports whether the Host header value hostHeader is one the
// server answers.
func (p hostPolicy) allows(hostHeader string) bool {
	if p.any {
		return true
	}
	host, port := splitHost(strings.ToLower(hostHeader))
	if host == "" {
		return false
	}
	if p.names[host] || (port != "" && p.hostPorts[net.JoinHostPort(host, port)]) {
		return true
	}
	for _, suffix := range p.suffixes {
		if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
			return true
		}
	}
	return false
}

// splitHost splits a Host header value, or an allowed_hosts entry, into
// host and port ("" when none): "[::1]:8000" is "::1" and "8000". A
// trailing dot on a name ("localhost.") is dropped: it names the same
// host.
func splitHost(v string) (host, port string) {
	host = v
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		host = v[1 : len(v)-1]
	}
	return strings.TrimSuffix(host, "."), port
}

// checkHost refuses a request whose Host header the server does not
// answer for, with 421: it was meant for another server, or a page made
// its own name point at this one.
func (s *Server) checkHost(c *fiber.Ctx) error {
	host := string(c.Request().Host())
	if s.hosts.allows(host) {
		return nil
	}
	return jobs.Errorf(jobs.EMISDIRECTED, "this server does not answer for host %s: use an address it listens on, or add the name to server.allowed_hosts", quoteParam(host))
}

// checkContentType refuses a POST whose body is not JSON, with 415: the
// body of every POST route is a JSON object, and a web page can send a
// text/plain or form body to any site without asking, but not a JSON one.
// A POST with an empty body and no Content-Type at all (curl -X POST
// .../cancel) is accepted: a body-less request says nothing to decode.
// "application/json" may carry parameters such as "; charset=utf-8".
func checkContentType(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodPost {
		return nil
	}
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		if len(c.Request().Body()) == 0 {
			return nil
		}
		return jobs.Errorf(jobs.EUNSUPPORTED, "Content-Type must be application/json; the request has none")
	}
	// A malformed parameter still leaves the media type readable.
	if mt, _, _ := mime.ParseMediaType(ct); mt == fiber.MIMEApplicationJSON {
		return nil
	}
	return jobs.Errorf(jobs.EUNSUPPORTED, "Content-Type must be application/json, not %s", quoteParam(ct))
}

// checkOrigin refuses, with 403, a request that changes something (any
// method but GET, HEAD and OPTIONS) and that a browser sent from a page of
// another origin, unless server.cors_origins lists that origin. Browsers
// name the sending page in Origin on every such request; other clients
// send none and are not affected. A page of the server's own origin (the
// same host and port) passes.
func (s *Server) checkOrigin(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return nil
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return nil
	}
	norm := normalizeOrigin(origin)
	if s.origins[norm] {
		return nil
	}
	if u, err := url.Parse(norm); err == nil && u.Host != "" && strings.EqualFold(u.Host, string(c.Request().Host())) {
		return nil
	}
	return jobs.Errorf(jobs.ENOTALLOWED, "cross-origin requests are refused: Origin %s is not in server.cors_origins", quoteParam(origin))
}

// normalizeOrigin lowers an origin's case and drops a trailing slash, as
// fiber's CORS middleware compares them.
func normalizeOrigin(origin string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(origin)), "/")
}

// fence runs before the API key check on every request: it refuses
// foreign Host headers, cross-origin changes and bodies that are not JSON.
func (s *Server) fence(c *fiber.Ctx) error {
	if err := s.checkHost(c); err != nil {
		return err
	}
	if err := s.checkOrigin(c); err != nil {
		return err
	}
	if err := checkContentType(c); err != nil {
		return err
	}
	return c.Next()
}

// corsHandler answers CORS preflights and sets the CORS headers for
// exactly origins; nil when there are none, and then the server sends no
// CORS header at all. keyHeader is the API key header browsers may send.
func corsHandler(origins []string, keyHeader string) fiber.Handler {
	if len(origins) == 0 {
		return nil
	}
	norm := make([]string, len(origins))
	for i, o := range origins {
		norm[i] = normalizeOrigin(o)
	}
	return cors.New(cors.Config{
		AllowOrigins:  strings.Join(norm, ","),
		AllowMethods:  "GET,HEAD,POST",
		AllowHeaders:  strings.Join([]string{fiber.HeaderContentType, fiber.HeaderAuthorization, "X-Correlation-ID", keyHeader}, ","),
		ExposeHeaders: strings.Join([]string{"X-Correlation-ID", fiber.HeaderRetryAfter, fiber.HeaderETag, fiber.HeaderContentDisposition}, ","),
		MaxAge:        600,
	})
}
