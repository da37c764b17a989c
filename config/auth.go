package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tako-run/tako/webhook"
)

// AuthConfig says who may call the API. With no keys at all the API is
// open, which tako allows only on a loopback address (see
// server.allow_unauthenticated_network_access).
type AuthConfig struct {
	// APIKeys maps a key's name, which records and logs show, to the key:
	// either the key itself ("ci: <key>", a user) or a block with its role
	// and quotas. From the environment: TAKO_AUTH_API_KEYS_<NAME>=key, and
	// TAKO_AUTH_API_KEYS_<NAME>_KEY, _ROLE, _MAX_PENDING, _MAX_CONCURRENT.
	APIKeys map[string]APIKeyConfig `koanf:"api_keys"`
	// APIKeysFile is a YAML file of more entries in the same two forms, so
	// keys can live outside tako.yaml (a mounted secret).
	APIKeysFile string `koanf:"api_keys_file"`
	// DefaultQuota is the quota of every key that does not set its own.
	DefaultQuota QuotaConfig `koanf:"default_quota"`
	// Header is the request header that carries a key; "Authorization:
	// Bearer <key>" is always accepted too.
	Header string `koanf:"header"`
}

// APIKeyConfig is one API key as written in the block form. The short form
// "name: key" means a user key with the default quotas.
type APIKeyConfig struct {
	// CallbackURL is where the webhook of the key's jobs goes when a
	// request names none; it comes before the job type's.
	CallbackURL string `koanf:"callback_url"`
	// Key is the secret, at least MinAPIKeyLength characters.
	Key string `koanf:"key"`
	// MaxConcurrent overrides auth.default_quota.max_concurrent; nil
	// inherits it, 0 means no limit.
	MaxConcurrent *int `koanf:"max_concurrent"`
	// MaxPending overrides auth.default_quota.max_pending; nil inherits it,
	// 0 means no limit.
	MaxPending *int `koanf:"max_pending"`
	// Role is RoleUser (the default when empty) or RoleAdmin.
	Role string `koanf:"role"`
	// WebhookSecret signs the webhooks of the key's jobs instead of
	// webhooks.secret: one secret, or several separated by commas to
	// rotate.
	WebhookSecret string `koanf:"webhook_secret"`
}

// QuotaConfig bounds the work of one API key across every node; 0 means
// no limit.
type QuotaConfig struct {
	// MaxConcurrent is the most running executions of the key, sync and
	// async; a sync request past it gets 429, an async job waits in the
	// queue.
	MaxConcurrent int `koanf:"max_concurrent"`
	// MaxPending is the most queued async executions of the key; a
	// submission past it gets 429.
	MaxPending int `koanf:"max_pending"`
}

// The roles of an API key.
const (
	// RoleUser sees and acts on the executions its key submitted only.
	RoleUser = "user"
	// RoleAdmin sees and acts on every execution.
	RoleAdmin = "admin"
)

// APIKey is one API key as tako uses it: the secret, the role and the
// quotas, defaults applied.
type APIKey struct {
	Key           string
	Role          string // RoleUser or RoleAdmin
	MaxConcurrent int    // 0: no limit
	MaxPending    int    // 0: no limit
	// CallbackURL is the key's default callback URL; "" for none.
	CallbackURL string
	// WebhookSecrets sign the key's webhooks; none means webhooks.secret.
	WebhookSecrets []string
}

// Admin reports whether the key's holder sees and acts on every execution.
func (k APIKey) Admin() bool { return k.Role == RoleAdmin }

// MinAPIKeyLength is the shortest API key tako accepts.
const MinAPIKeyLength = 16

// keyName is what an API key's name may look like: it is stored with every
// execution and used as a filter.
var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// APIKeys returns every API key by name, from auth.api_keys and
// auth.api_keys_file, with the default quota applied. Every error names
// the key or file at fault and never contains a key.
func (c *Config) APIKeys() (map[string]APIKey, error) {
	type entry struct {
		cfg   APIKeyConfig
		where string // how errors name it: auth.api_keys.<name> or auth.api_keys_file: <name>
	}
	entries := make(map[string]entry, len(c.Auth.APIKeys))
	for name, k := range c.Auth.APIKeys {
		entries[name] = entry{k, "auth.api_keys." + name}
	}
	if path := c.Auth.APIKeysFile; path != "" {
		fromFile, err := readKeysFile(path)
		if err != nil {
			return nil, err
		}
		for name, k := range fromFile {
			if _, dup := entries[name]; dup {
				return nil, fmt.Errorf("config: auth.api_keys_file: key name %q is also in auth.api_keys", name)
			}
			entries[name] = entry{k, "auth.api_keys_file: " + name}
		}
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	keys := make(map[string]APIKey, len(entries))
	seen := map[string]string{}
	for _, name := range names {
		e := entries[name]
		k := e.cfg
		switch {
		case !keyName.MatchString(name):
			return nil, fmt.Errorf("config: %s: a key name is 1 to 64 letters, digits, '.', '_' or '-'", e.where)
		case len(k.Key) < MinAPIKeyLength:
			return nil, fmt.Errorf("config: %s: the key must be at least %d characters", e.where, MinAPIKeyLength)
		case seen[k.Key] != "":
			return nil, fmt.Errorf("config: %s: the same key as %s; give each caller its own", e.where, seen[k.Key])
		}
		seen[k.Key] = name
		key := APIKey{Key: k.Key, Role: k.Role, MaxConcurrent: c.Auth.DefaultQuota.MaxConcurrent, MaxPending: c.Auth.DefaultQuota.MaxPending,
			CallbackURL: k.CallbackURL, WebhookSecrets: splitList(k.WebhookSecret)}
		switch key.Role {
		case "":
			key.Role = RoleUser
		case RoleUser, RoleAdmin:
		default:
			return nil, fmt.Errorf("config: %s.role: %q is not one of %s, %s", e.where, k.Role, RoleAdmin, RoleUser)
		}
		for _, q := range []struct {
			field string
			set   *int
			dst   *int
		}{{"max_concurrent", k.MaxConcurrent, &key.MaxConcurrent}, {"max_pending", k.MaxPending, &key.MaxPending}} {
			if q.set == nil {
				continue
			}
			if *q.set < 0 {
				return nil, fmt.Errorf("config: %s.%s: %d must not be negative (0 means no limit)", e.where, q.field, *q.set)
			}
			*q.dst = *q.set
		}
		if why := c.callbackURLProblem(k.CallbackURL); k.CallbackURL != "" && why != "" {
			return nil, fmt.Errorf("config: %s.callback_url: %s", e.where, why)
		}
		for i, secret := range key.WebhookSecrets {
			if _, err := webhook.ParseSecret(secret); err != nil {
				return nil, fmt.Errorf("config: %s.webhook_secret: secret %d: %v", e.where, i+1, err)
			}
		}
		keys[name] = key
	}
	return keys, nil
}

// splitList splits a comma-separated value into its trimmed, non-empty
// items; nil when there are none.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// readKeysFile reads auth.api_keys_file: a YAML map of name to either a
// key or a block {key, role, max_pending, max_concurrent}. Errors name the
// file's entry, never its key.
func readKeysFile(path string) (map[string]APIKeyConfig, error) {
	raw, err := readYAMLFile(path, "auth.api_keys_file")
	if err != nil {
		return nil, err
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config: auth.api_keys_file: %s is not a YAML map of name: key", path)
	}
	out := make(map[string]APIKeyConfig, len(doc))
	for name, n := range doc {
		k, err := keyEntry(&n)
		if err != nil {
			return nil, fmt.Errorf("config: auth.api_keys_file: %s%s", name, err)
		}
		out[name] = k
	}
	return out, nil
}

// keyEntry decodes one entry of the keys file. Its errors start with the
// field they are about (".role: ...") or ": " for the entry itself.
func keyEntry(n *yaml.Node) (APIKeyConfig, error) {
	var k APIKeyConfig
	switch n.Kind {
	case yaml.ScalarNode:
		k.Key = n.Value
		return k, nil
	case yaml.MappingNode:
	default:
		return k, fmt.Errorf(": must be a key or a block {key, role, max_pending, max_concurrent, callback_url, webhook_secret}")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		field, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return k, fmt.Errorf(".%s: must be a single value", field)
		}
		switch field {
		case "key":
			k.Key = v.Value
		case "role":
			k.Role = v.Value
		case "callback_url":
			k.CallbackURL = v.Value
		case "webhook_secret":
			k.WebhookSecret = v.Value
		case "max_pending", "max_concurrent":
			q, err := strconv.Atoi(v.Value)
			if err != nil {
				return k, fmt.Errorf(".%s: %q is not a whole number", field, v.Value)
			}
			if field == "max_pending" {
				k.MaxPending = &q
			} else {
				k.MaxConcurrent = &q
			}
		default:
			return k, fmt.Errorf(": unknown key %q (key, role, max_pending, max_concurrent, callback_url or webhook_secret)", field)
		}
	}
	return k, nil
}
