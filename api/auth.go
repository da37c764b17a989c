package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/ui"
)

// Auth says who may call the API. With no Keys the API is open (the
// server refuses to start that way on a network address unless told to),
// and every caller sees every execution.
type Auth struct {
	// Keys maps each key's name, recorded with the executions it submits,
	// to the key and its role.
	Keys map[string]Key
	// Header carries a key; default "X-API-Key". "Authorization: Bearer
	// <key>" is always accepted too.
	Header string
	// OpenMetrics serves /metrics without a key.
	OpenMetrics bool
}

// Key is one API key: the secret a caller presents, and whether its holder
// is an admin, who sees and acts on every execution. Any other key sees
// only the executions it submitted.
type Key struct {
	Secret string
	Admin  bool
}

// keyring checks presented API keys. It keeps only their SHA-256 digests
// and compares a presented key with every one of them in constant time, so
// neither the timing nor an early exit tells which key came close.
type keyring struct {
	header string
	names  []string
	admins []bool
	sums   [][sha256.Size]byte
}

func newKeyring(a Auth) *keyring {
	k := &keyring{header: a.Header}
	if k.header == "" {
		k.header = "X-API-Key"
	}
	for name, key := range a.Keys {
		k.names = append(k.names, name)
		k.admins = append(k.admins, key.Admin)
		k.sums = append(k.sums, sha256.Sum256([]byte(key.Secret)))
	}
	return k
}

// enabled reports whether the API needs a key.
func (k *keyring) enabled() bool { return len(k.sums) > 0 }

// authenticate returns the caller whose key c presents. A missing or wrong
// key is an EUNAUTHORIZED error that says which; it never echoes the key.
func (k *keyring) authenticate(c *fiber.Ctx) (jobs.Caller, error) {
	presented := c.Get(k.header)
	if presented == "" {
		if scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
			presented = strings.TrimSpace(token)
		}
	}
	if presented == "" {
		return jobs.Caller{}, jobs.Errorf(jobs.EUNAUTHORIZED, "an API key is required: send it in the %s header or as Authorization: Bearer <key>", k.header)
	}
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range k.sums {
		if subtle.ConstantTimeCompare(sum[:], k.sums[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return jobs.Caller{}, jobs.Errorf(jobs.EUNAUTHORIZED, "the API key is not valid")
	}
	return jobs.Caller{APIKey: k.names[found], Admin: k.admins[found]}, nil
}

// localCaller holds the jobs.Caller the request was authenticated as.
const localCaller = "tako.caller"

// openCaller is every caller of a server without API keys: all of them see
// and act on every execution, as before keys existed.
var openCaller = jobs.Caller{Admin: true}

// callerOf returns who c was authenticated as. A request that did not pass
// the guard (none reaches a handler that asks) is the zero Caller, which
// sees nothing.
func callerOf(c *fiber.Ctx) jobs.Caller {
	caller, _ := c.Locals(localCaller).(jobs.Caller)
	return caller
}

// guard runs before every handler except the public ones (publicPath, and
// the console's pages when it is served, which hold nothing of a caller's): it
// meters the caller, then checks its API key. The limiter comes first so
// that guessing keys is metered too; a caller whose key checks out is
// metered by key, any other by its address.
func (s *Server) guard(c *fiber.Ctx) error {
	if publicPath(c.Path()) || (s.console && ui.IsConsolePath(c.Path())) {
		return c.Next()
	}
	caller, authErr := openCaller, error(nil)
	if s.keys.enabled() {
		caller, authErr = s.keys.authenticate(c)
	}
	metered := "ip:" + c.IP()
	if caller.APIKey != "" {
		metered = "key:" + caller.APIKey
	}
	if err := s.limiter.allow(metered); err != nil {
		return err
	}
	if authErr != nil && !(s.openMetrics && c.Path() == "/metrics") {
		return authErr
	}
	c.Locals(localCaller, caller)
	return c.Next()
}

// publicPath reports whether path is served without an API key: /health,
// the API's description (/openapi.json) and its docs page (/, /docs and
// the page's assets), none of which shows anything of a caller's.
func publicPath(path string) bool {
	switch path {
	case "/health", "/openapi.json", "/", "/docs":
		return true
	}
	return strings.HasPrefix(path, "/docs/")
}
