package config

import (
	"fmt"
	"regexp"
	"sort"

	"go.yaml.in/yaml/v3"
)

// AuthConfig says who may call the API. With no keys at all the API is
// open, which tako allows only on a loopback address (see
// server.allow_unauthenticated_network_access).
type AuthConfig struct {
	// APIKeys maps a key's name, which records and logs show, to the key
	// itself, at least MinAPIKeyLength characters. From the environment:
	// TAKO_AUTH_API_KEYS_<NAME>=key.
	APIKeys map[string]string `koanf:"api_keys"`
	// APIKeysFile is a YAML file of more "name: key" entries, so keys can
	// live outside tako.yaml (a mounted secret).
	APIKeysFile string `koanf:"api_keys_file"`
	// Header is the request header that carries a key; "Authorization:
	// Bearer <key>" is always accepted too.
	Header string `koanf:"header"`
}

// MinAPIKeyLength is the shortest API key tako accepts.
const MinAPIKeyLength = 16

// keyName is what an API key's name may look like: it is stored with every
// execution and used as a filter.
var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// APIKeys returns every API key, name to key, from auth.api_keys and
// auth.api_keys_file. Every error names the key or file at fault and never
// contains a key.
func (c *Config) APIKeys() (map[string]string, error) {
	keys := make(map[string]string, len(c.Auth.APIKeys))
	for name, key := range c.Auth.APIKeys {
		keys[name] = key
	}
	if path := c.Auth.APIKeysFile; path != "" {
		raw, err := readYAMLFile(path, "auth.api_keys_file")
		if err != nil {
			return nil, err
		}
		var fromFile map[string]string
		if err := yaml.Unmarshal(raw, &fromFile); err != nil {
			return nil, fmt.Errorf("config: auth.api_keys_file: %s is not a YAML map of name: key", path)
		}
		for name, key := range fromFile {
			if _, dup := keys[name]; dup {
				return nil, fmt.Errorf("config: auth.api_keys_file: key name %q is also in auth.api_keys", name)
			}
			keys[name] = key
		}
	}
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]string{}
	for _, name := range names {
		key := keys[name]
		switch {
		case !keyName.MatchString(name):
			return nil, fmt.Errorf("config: auth.api_keys.%s: a key name is 1 to 64 letters, digits, '.', '_' or '-'", name)
		case len(key) < MinAPIKeyLength:
			return nil, fmt.Errorf("config: auth.api_keys.%s: the key must be at least %d characters", name, MinAPIKeyLength)
		case seen[key] != "":
			return nil, fmt.Errorf("config: auth.api_keys.%s: the same key as %s; give each caller its own", name, seen[key])
		}
		seen[key] = name
	}
	return keys, nil
}
