package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
)

// FuzzLoad loads an arbitrary tako.yaml with arbitrary environment entries
// (one "K=V" per line) and an arbitrary auth.api_keys_file. The
// properties: Load never panics; it returns either an error that starts
// "config: " or a Config that passes Validate, records the file it read,
// has no negative size, builds a registry and prints as YAML that loads
// again to the same limits and queue (when no API key is masked in it);
// every key of the file that the schema lacks is named, quoted, in the
// error (unless an environment variable's error came first); and no error
// shows an API key. The seeds are in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "tako.yaml")
	keysPath := filepath.Join(dir, "keys.yaml")
	printedPath := filepath.Join(dir, "printed.yaml")
	absent := []string{filepath.Join(dir, "absent.yaml")}

	f.Fuzz(func(t *testing.T, file, environ, keysFile string) {
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		// The flag outranks the file and the environment, so the keys file
		// is always this one: a fuzzed path could name /dev/zero.
		flags := map[string]string{"auth.api_keys_file": ""}
		if keysFile != "" {
			if err := os.WriteFile(keysPath, []byte(keysFile), 0o600); err != nil {
				t.Fatal(err)
			}
			flags["auth.api_keys_file"] = keysPath
		}
		var env []string
		if environ != "" {
			env = strings.Split(environ, "\n")
		}

		cfg, err := Load(LoadOptions{File: path, Environ: env, Flags: flags, SearchPaths: absent})
		if err != nil {
			checkLoadError(t, err, file, environ, keysFile)
			return
		}
		if cfg == nil {
			t.Fatal("Load returned neither a Config nor an error")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load returned a Config that fails Validate: %v", err)
		}
		if cfg.Path != path {
			t.Fatalf("Config.Path = %q, want %q", cfg.Path, path)
		}
		checkSizes(t, reflect.ValueOf(*cfg), "")
		if _, err := cfg.Registry(); err != nil {
			t.Fatalf("Registry of a loaded Config: %v", err)
		}
		var printed bytes.Buffer
		if err := cfg.WriteYAML(&printed); err != nil {
			t.Fatalf("WriteYAML of a loaded Config: %v", err)
		}
		keys, err := cfg.APIKeys()
		if err != nil {
			t.Fatalf("APIKeys of a loaded Config: %v", err)
		}
		if len(keys) > 0 {
			return // printed masked, they are too short to load again
		}
		if err := os.WriteFile(printedPath, printed.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := Load(LoadOptions{File: printedPath, Environ: []string{}, SearchPaths: absent})
		if err != nil {
			t.Fatalf("the printed configuration does not load: %v\n%s", err, printed.Bytes())
		}
		if again.Limits != cfg.Limits || again.Queue != cfg.Queue {
			t.Fatalf("the printed configuration loads differently:\nlimits %+v, queue %+v\nlimits %+v, queue %+v\n%s",
				cfg.Limits, cfg.Queue, again.Limits, again.Queue, printed.Bytes())
		}
	})
}

// checkSizes fails when a Size in v, a loaded Config or a part of it, is
// negative: a size is a number of bytes, whatever was written.
func checkSizes(t *testing.T, v reflect.Value, key string) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[Size]():
		if v.Int() < 0 {
			t.Fatalf("loaded Config has %s = %d", key, v.Int())
		}
	case v.Kind() == reflect.Pointer && !v.IsNil():
		checkSizes(t, v.Elem(), key)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				checkSizes(t, v.Field(i), join(key, f.Tag.Get("koanf")))
			}
		}
	case v.Kind() == reflect.Map:
		for it := v.MapRange(); it.Next(); {
			checkSizes(t, it.Value(), join(key, fmt.Sprint(it.Key().Interface())))
		}
	}
}

// checkLoadError checks an error Load returned for file, environ and
// keysFile.
func checkLoadError(t *testing.T, err error, file, environ, keysFile string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: ") {
		t.Fatalf("Load error does not start with \"config: \": %q", msg)
	}
	tree, perr := yaml.Parser().Unmarshal([]byte(file))
	if perr != nil {
		tree = nil // Load failed to read it too
	}
	// Environment variables are checked before the file's keys.
	if tree != nil && !strings.Contains(msg, "config: environment variable ") {
		for _, key := range unknownFileKeys(tree, reflect.TypeFor[Config](), "") {
			if !strings.Contains(msg, strconv.Quote(key)) {
				t.Fatalf("Load error does not name the unknown key %q: %s", key, msg)
			}
		}
	}
	input := file + "\n" + environ + "\n" + keysFile
	for _, key := range apiKeysIn(tree, environ, keysFile) {
		// A key written once can only reach the message from the key
		// itself; one written twice may also be some other value.
		if strings.Count(input, key) <= 1 && strings.Contains(msg, key) {
			t.Fatalf("Load error shows the API key %q: %s", key, msg)
		}
	}
}

// unknownFileKeys returns the dotted paths of the keys in tree, a parsed
// YAML file, that t (Config or a part of it) has no koanf field for.
func unknownFileKeys(tree map[string]any, t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for k, v := range tree {
		path := join(prefix, k)
		var child reflect.Type
		switch t.Kind() {
		case reflect.Struct:
			field, ok := fieldByKey(t, k)
			if !ok {
				out = append(out, path)
				continue
			}
			child = field
		case reflect.Map:
			child = t.Elem()
		default:
			continue
		}
		if sub, ok := stringKeys(v); ok {
			out = append(out, unknownFileKeys(sub, child, path)...)
		}
	}
	return out
}

// fieldByKey returns the type of t's field whose koanf tag is key.
func fieldByKey(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && key != "-" && f.Tag.Get("koanf") == key {
			return f.Type, true
		}
	}
	return nil, false
}

// stringKeys returns v as a map with string keys, as koanf sees a YAML
// mapping, and whether v is a mapping at all.
func stringKeys(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// apiKeysIn lists the strings the inputs give as API keys, long enough to
// be accepted: auth.api_keys in the file's tree (nil when it is not YAML),
// TAKO_AUTH_API_KEYS_* variables and the entries of the keys file.
func apiKeysIn(tree map[string]any, environ, keysFile string) []string {
	var out []string
	add := func(m map[string]any) {
		for _, v := range m {
			if block, ok := stringKeys(v); ok {
				v = block["key"] // the block form
			}
			if s, ok := v.(string); ok && len(s) >= MinAPIKeyLength {
				out = append(out, s)
			}
		}
	}
	if auth, ok := stringKeys(tree["auth"]); ok {
		if keys, ok := stringKeys(auth["api_keys"]); ok {
			add(keys)
		}
	}
	if tree, err := yaml.Parser().Unmarshal([]byte(keysFile)); err == nil {
		add(tree)
	}
	for kv := range strings.SplitSeq(environ, "\n") {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), "TAKO_AUTH_API_KEYS_") && len(value) >= MinAPIKeyLength {
			out = append(out, value)
		}
	}
	return out
}
