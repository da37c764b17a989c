package config

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/tako-run/tako/jobtypes"
)

// masked replaces secret values in printed configuration.
const masked = "********"

// WriteYAML writes the effective configuration to w as YAML under the same
// keys tako.yaml uses: job types resolved (inherited values filled in, the
// built-in default included), sizes as "512MiB", durations as "30s" or
// "5m0s". Secrets are masked: the value of any key whose name contains
// password, secret, token or key (idempotency keys excepted), and the
// password of any URL. The output is valid input for Load.
func (c *Config) WriteYAML(w io.Writer) error {
	eff := *c
	eff.JobTypes = make(map[string]JobTypeConfig)
	for _, jt := range c.jobTypes() {
		eff.JobTypes[jt.Name] = jobTypeConfig(jt)
	}
	tree, ok := mask("", toTree(reflect.ValueOf(eff))).(map[string]any)
	if !ok {
		return fmt.Errorf("print config: unexpected shape")
	}
	out, err := yaml.Parser().Marshal(tree)
	if err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return nil
}

// jobTypeConfig writes a resolved job type back in tako.yaml's shape, every
// field set.
func jobTypeConfig(jt jobtypes.JobType) JobTypeConfig {
	idle := Duration(jt.Pool.IdleTTL)
	return JobTypeConfig{
		Env:   jt.Env,
		Image: jt.Image,
		Limits: JobLimitsConfig{
			CPUs:     jt.Limits.CPUs,
			FileSize: Size(jt.Limits.FileSize),
			Memory:   Size(jt.Limits.Memory),
			NoFile:   int(jt.Limits.NoFile),
			Pids:     int(jt.Limits.Pids),
			Timeout:  Duration(jt.Limits.Timeout),
			Tmp:      Size(jt.Limits.Tmp),
		},
		Network:        networkConfigOf(jt),
		Pool:           PoolConfig{IdleTTL: &idle, Max: &jt.Pool.Max, Min: &jt.Pool.Min},
		Preload:        jt.Preload,
		Requirements:   jt.Requirements,
		Runtime:        string(jt.Runtime),
		SecurityMode:   string(jt.SecurityMode),
		SystemPackages: jt.SystemPackages,
	}
}

// toTree turns a configuration value into maps, lists and scalars keyed by
// koanf tags, rendering sizes and durations the way they are written.
func toTree(v reflect.Value) any {
	switch v.Type() {
	case reflect.TypeFor[Size]():
		return jobtypes.FormatSize(v.Int())
	case reflect.TypeFor[Duration]():
		return time.Duration(v.Int()).String()
	case reflect.TypeFor[NetworkConfig]():
		return networkTree(v)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return toTree(v.Elem())
	case reflect.Struct:
		out := make(map[string]any)
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if tag := f.Tag.Get("koanf"); f.IsExported() && tag != "" && tag != "-" {
				out[tag] = toTree(v.Field(i))
			}
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = toTree(it.Value())
		}
		return out
	case reflect.Slice:
		out := make([]any, 0, v.Len())
		for i := range v.Len() {
			out = append(out, toTree(v.Index(i)))
		}
		return out
	}
	return v.Interface()
}

// mask hides secrets in a tree from toTree; name is the key the value
// sits under.
func mask(name string, v any) any {
	if m, ok := v.(map[string]any); ok && secretKey(name) {
		// A map of secrets, such as auth.api_keys: the names are not
		// secret and show which keys exist. An entry that is a block
		// ({key, role, ...}) keeps what is not secret in it.
		for k, child := range m {
			switch {
			case empty(child):
			case isMap(child):
				m[k] = mask("", child)
			default:
				m[k] = masked
			}
		}
		return m
	}
	if secretKey(name) && !empty(v) {
		return masked
	}
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			x[k] = mask(k, child)
		}
	case []any:
		for i, child := range x {
			x[i] = mask("", child)
		}
	case string:
		return maskURL(x)
	}
	return v
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// secretKey reports whether a key's name marks its value as secret.
func secretKey(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "idempotency") || strings.HasSuffix(n, "_file") {
		return false // a key's name, or where secrets live, is not one
	}
	for _, word := range []string{"password", "secret", "token", "api_keys", "key"} {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

// empty reports whether a value is unset, which is safe to show and worth
// showing.
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// maskURL replaces the password in a URL's userinfo with asterisks, leaving
// the rest of the text exactly as written: "https://u:p@host/simple"
// becomes "https://u:********@host/simple". Anything else is returned as is.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	scheme := strings.Index(s, "://")
	if scheme < 0 {
		return s
	}
	start := scheme + len("://")
	authority := s[start:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at := strings.LastIndexByte(authority, '@')
	colon := strings.IndexByte(authority[:max(at, 0)], ':')
	if at < 0 || colon < 0 {
		return s
	}
	return s[:start+colon+1] + masked + s[start+at:]
}
