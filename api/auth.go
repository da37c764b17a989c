package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// Auth says who may call the API. With no Keys the API is open (the
// server refuses to start that way on a network address unless told to).
type Auth struct {
	// Keys maps each key's name, recorded with the executions it submits,
	// to the key.
	Keys map[string]string
	// Header carries a key; default "X-API-Key". "Authorization: Bearer
	// <key>" is always accepted too.
	Header string
	// OpenMetrics serves /metrics without a key.
	OpenMetrics bool
}

// keyring checks presented API keys. It keeps only their SHA-256 digests
// and compares a presented key with every one of them in constant time, so
// neither the timing nor an early exit tells which key came close.
type keyring struct {
	header string
	names  []string
	sums   [][sha256.Size]byte
}

func newKeyring(a Auth) *keyring {
	k := &keyring{header: a.Header}
	if k.header == "" {
		k.header = "X-API-Key"
	}
	for name, key := range a.Keys {
		k.names = append(k.names, name)
		k.sums = append(k.sums, sha256.Sum256([]byte(key)))
	}
	return k
}

// enabled reports whether the API needs a key.
func (k *keyring) enabled() bool { return len(k.sums) > 0 }

// authenticate returns the name of the key c presents. A missing or wrong
// key is an EUNAUTHORIZED error that says which; it never echoes the key.
func (k *keyring) authenticate(c *fiber.Ctx) (string, error) {
	presented := c.Get(k.header)
	if presented == "" {
		if scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
			presented = strings.TrimSpace(token)
		}
	}
	if presented == "" {
		return "", jobs.Errorf(jobs.EUNAUTHORIZED, "an API key is required: send it in the %s header or as Authorization: Bearer <key>", k.header)
	}
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range k.sums {
		if subtle.ConstantTimeCompare(sum[:], k.sums[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", jobs.Errorf(jobs.EUNAUTHORIZED, "the API key is not valid")
	}
	return k.names[found], nil
}

// localAPIKey holds the name of the request's API key, "" when the server
// has none.
const localAPIKey = "tako.api_key"

// apiKeyOf returns the name of the key c was authenticated with.
func apiKeyOf(c *fiber.Ctx) string {
	name, _ := c.Locals(localAPIKey).(string)
	return name
}

// guard runs before every handler except /health and /openapi.json: it
// meters the caller, then checks its API key. The limiter comes first so
// that guessing keys is metered too; a caller whose key checks out is
// metered by key, any other by its address.
func (s *Server) guard(c *fiber.Ctx) error {
	if c.Path() == "/health" || c.Path() == "/openapi.json" {
		return c.Next()
	}
	name, authErr := "", error(nil)
	if s.keys.enabled() {
		name, authErr = s.keys.authenticate(c)
	}
	caller := "ip:" + c.IP()
	if name != "" {
		caller = "key:" + name
	}
	if err := s.limiter.allow(caller); err != nil {
		return err
	}
	if authErr != nil && !(s.openMetrics && c.Path() == "/metrics") {
		return authErr
	}
	c.Locals(localAPIKey, name)
	return c.Next()
}
