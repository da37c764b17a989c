package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// node is one key of the configuration schema. The schema is derived from
// the koanf tags of Config, so the set of valid keys, the environment
// variable names and the names in error messages cannot drift apart from the
// struct.
type node struct {
	typ    reflect.Type
	fields map[string]*node // set for a struct: its keys
	elem   *node            // set for a map: what every map key holds
	// word is set for a block that may also be written as one value, such
	// as a job type's network: "bridge", or {allow: [...]}.
	word bool
}

// wordForms are the blocks that may also be written as one value.
var wordForms = map[reflect.Type]bool{reflect.TypeFor[NetworkConfig](): true}

// auth.api_keys is the one map whose entries have a short form: "name: key"
// stands for "name: {key: key}".
const (
	apiKeysKey     = "auth.api_keys"
	shortFormField = "key"
)

// schema returns the key schema of Config.
func schema() *node { return schemaOf(reflect.TypeFor[Config]()) }

func schemaOf(t reflect.Type) *node {
	n := &node{typ: t, word: wordForms[t]}
	switch t.Kind() {
	case reflect.Struct:
		n.fields = make(map[string]*node)
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			n.fields[tag] = schemaOf(f.Type)
		}
	case reflect.Map:
		n.elem = schemaOf(t.Elem())
	}
	return n
}

// leaf reports whether the key holds a value rather than more keys.
func (n *node) leaf() bool { return n.fields == nil && n.elem == nil }

// settable reports whether one value (from a variable or a flag) can set
// the key.
func (n *node) settable() bool { return n.leaf() || n.word }

// list reports whether the key holds a list of values.
func (n *node) list() bool { return n.typ.Kind() == reflect.Slice }

// names returns the struct's keys in sorted order.
func (n *node) names() []string {
	out := make([]string, 0, len(n.fields))
	for name := range n.fields {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// lookup returns the leaf node of a dotted key such as "server.port" or
// "job_types.data.limits.memory".
func (n *node) lookup(key string) (*node, bool) {
	for _, seg := range strings.Split(key, ".") {
		switch {
		case seg == "":
			return nil, false
		case n.fields != nil:
			child, ok := n.fields[seg]
			if !ok {
				return nil, false
			}
			n = child
		case n.elem != nil:
			n = n.elem
		default:
			return nil, false
		}
	}
	return n, n.settable()
}

// unknownKeys returns an error for every key in raw, a koanf map, that the
// schema does not have, naming its full dotted path. Keys are matched
// exactly: "Server" is not "server".
func (n *node) unknownKeys(raw map[string]any, prefix string) []error {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var errs []error
	for _, k := range keys {
		path := join(prefix, k)
		child := n.elem
		if n.fields != nil {
			child = n.fields[k]
		}
		if child == nil {
			if block, rest, dotted := strings.Cut(k, "."); dotted {
				errs = append(errs, fmt.Errorf("config: unknown key %q: write nested keys as blocks (%s: {%s: ...}), not with dots", path, block, rest))
			} else {
				errs = append(errs, fmt.Errorf("config: unknown key %q", path))
			}
			continue
		}
		// A value of the wrong shape (a number where a block belongs) is
		// left to the decoder, which names the key too.
		if sub, ok := raw[k].(map[string]any); ok && !child.leaf() {
			errs = append(errs, child.unknownKeys(sub, path)...)
		}
	}
	return errs
}

// keyOf turns a field name from a mapstructure error, such as
// "job_types[data].limits.memory" or "job_types[data].preload[0]", into
// the koanf key a user wrote: "job_types.data.limits.memory",
// "job_types.data.preload[0]".
func (n *node) keyOf(field string) string {
	var b strings.Builder
	for field != "" {
		if field[0] == '[' {
			end := strings.IndexByte(field, ']')
			if end < 0 {
				b.WriteString(field)
				break
			}
			seg := field[1:end]
			field = field[end+1:]
			if n != nil && n.elem != nil {
				b.WriteString("." + seg)
				n = n.elem
			} else {
				b.WriteString("[" + seg + "]")
				n = nil
			}
			continue
		}
		field = strings.TrimPrefix(field, ".")
		end := strings.IndexAny(field, ".[")
		if end < 0 {
			end = len(field)
		}
		seg := field[:end]
		field = field[end:]
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
		if n != nil {
			n = n.fields[seg]
		}
	}
	return b.String()
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}
