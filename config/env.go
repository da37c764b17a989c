package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tako-run/tako/jobtypes"
)

const (
	// envPrefix starts every environment variable that sets a key.
	envPrefix = "TAKO_"
	// envConfigFile names the configuration file; it is not a key.
	envConfigFile = "TAKO_CONFIG"
	// envTestPrefix is left alone so tests can use TAKO_ variables freely.
	envTestPrefix = "TAKO_TEST_"
)

// envLayer maps the TAKO_* variables in environ ("K=V" entries) onto
// configuration keys. declared lists the names a map key already holds, such
// as the job types the file declares, so that names containing '_' or '-'
// can be told apart from the keys that follow them. A TAKO_ variable that
// names no key is an error naming the variable.
func envLayer(root *node, environ []string, declared func(mapKey string) []string) (map[string]any, error) {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) ||
			name == envConfigFile || strings.HasPrefix(name, envTestPrefix) {
			continue
		}
		vars[name] = value // a later duplicate wins, as in a shell
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)

	out := make(map[string]any, len(vars))
	var errs []error
	for _, name := range names {
		key, leaf, err := root.matchEnv(strings.TrimPrefix(name, envPrefix), "", declared)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("config: environment variable %s: %w", name, err))
		case leaf == nil:
			errs = append(errs, fmt.Errorf("config: environment variable %s matches no configuration key", name))
		default:
			out[key] = layerValue(leaf, vars[name])
		}
	}
	return out, errors.Join(errs...)
}

// flagLayer checks that every flag names a configuration key and turns list
// values into lists.
func flagLayer(root *node, flags map[string]string) (map[string]any, error) {
	out := make(map[string]any, len(flags))
	var errs []error
	for key, value := range flags {
		leaf, ok := root.lookup(key)
		if !ok {
			errs = append(errs, fmt.Errorf("config: flag sets unknown key %q", key))
			continue
		}
		out[key] = layerValue(leaf, value)
	}
	return out, errors.Join(errs...)
}

// layerValue turns a string from the environment or a flag into what the
// decoder expects for leaf: lists are comma-separated, everything else is
// converted by the decoder.
func layerValue(leaf *node, value string) any {
	if !leaf.list() {
		return value
	}
	items := []any{}
	for item := range strings.SplitSeq(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// matchEnv finds the key that the variable name tail (the part after TAKO_
// or after the words already matched) sets under n, whose key is path. It
// returns a nil leaf when no key matches.
func (n *node) matchEnv(tail, path string, declared func(string) []string) (string, *node, error) {
	switch {
	case n.fields != nil:
		up := asciiUpper(tail)
		for _, name := range n.names() {
			child, word := n.fields[name], envWord(name)
			if up == word && child.settable() {
				return join(path, name), child, nil
			}
			if strings.HasPrefix(up, word+"_") {
				key, leaf, err := child.matchEnv(tail[len(word)+1:], join(path, name), declared)
				if err != nil || leaf != nil {
					return key, leaf, err
				}
			}
		}
	case n.elem != nil && n.elem.leaf():
		// A map of values, such as a job type's env: the rest of the
		// variable is the map key, case kept.
		if tail != "" {
			return join(path, tail), n.elem, nil
		}
	case n.elem != nil && path == apiKeysKey:
		return n.matchShortForm(tail, path)
	case n.elem != nil:
		// A map of blocks, such as job_types: the map key is a name that
		// may itself contain '_'.
		names, err := mapKeyCandidates(tail, declared(path))
		if err != nil {
			return "", nil, err
		}
		for _, name := range names {
			rest := tail[len(envWord(name))+1:]
			key, leaf, err := n.elem.matchEnv(rest, join(path, name), declared)
			if err != nil || leaf != nil {
				return key, leaf, err
			}
		}
	}
	return "", nil, nil
}

// matchShortForm matches the variables of auth.api_keys, whose entries
// have a short form: <NAME>_<FIELD> sets that field of the entry <NAME>
// when FIELD is one of the block's (KEY, ROLE, MAX_PENDING,
// MAX_CONCURRENT), and any other tail, <NAME> alone, sets the key of the
// entry named by all of it. Names keep their case.
func (n *node) matchShortForm(tail, path string) (string, *node, error) {
	if tail == "" {
		return "", nil, nil
	}
	up := asciiUpper(tail)
	for _, field := range n.elem.names() {
		word := envWord(field)
		if len(tail) > len(word)+1 && strings.HasSuffix(up, "_"+word) {
			return join(join(path, tail[:len(tail)-len(word)-1]), field), n.elem.fields[field], nil
		}
	}
	return join(join(path, tail), shortFormField), n.elem.fields[shortFormField], nil
}

// mapKeyCandidates lists the names that tail may start with, in the order
// they are tried: first the declared names, longest first, then every
// '_'-separated prefix of tail as a new lowercase name, shortest first.
func mapKeyCandidates(tail string, declared []string) ([]string, error) {
	up := asciiUpper(tail)
	var out []string
	byWord := make(map[string]string)
	for _, name := range declared {
		word := envWord(name)
		if !strings.HasPrefix(up, word+"_") {
			continue
		}
		if other, dup := byWord[word]; dup {
			return nil, fmt.Errorf("%q and %q are both written %s", other, name, word)
		}
		byWord[word] = name
		out = append(out, name)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })

	for i := range len(tail) {
		if tail[i] != '_' {
			continue
		}
		name := asciiLower(tail[:i])
		if _, dup := byWord[envWord(name)]; !dup && jobtypes.ValidName(name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// envWord is how a key or name is written in a variable name: upper case,
// with '-' as '_'.
func envWord(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// asciiUpper upper-cases the ASCII letters of s and keeps every other byte,
// so that a prefix matched in the result has the same length in s.
// strings.ToUpper does not: "ɐ" grows to "Ɐ", an invalid byte to U+FFFD.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// asciiLower lower-cases the ASCII letters of s and keeps every other byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
