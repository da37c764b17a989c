package config

import (
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds tako.yaml and auth.api_keys_file. A configuration is
// a few kilobytes; a larger file is a mistake (or /dev/zero), and reading it
// whole would take the process's memory.
const MaxFileBytes = 1 << 20

// MaxYAMLValues bounds the values of a YAML file counted with its aliases
// expanded. An alias is a reference, so a few lines of nested aliases can
// stand for billions of values that every later step (merging, decoding,
// validating) would walk; the YAML parser's own guard lets small documents
// expand about a hundred thousand-fold. No real configuration comes near
// this.
const MaxYAMLValues = 100_000

// readYAMLFile reads the YAML file at path, which what names in errors
// ("config: <what>: ..."), refusing a file over MaxFileBytes and one whose
// aliases expand past MaxYAMLValues. It returns the file's bytes, to be
// parsed by the caller.
func readYAMLFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", what, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: the file is larger than %d bytes", what, MaxFileBytes)
	}
	if err := checkAliases(data); err != nil {
		return nil, fmt.Errorf("config: %s: %w", what, err)
	}
	return data, nil
}

// errExcessiveAliasing is checkAliases's answer to an alias bomb.
var errExcessiveAliasing = fmt.Errorf("excessive aliasing: the YAML expands to more than %d values", MaxYAMLValues)

// checkAliases counts the values of the YAML document in data with every
// alias expanded, and fails past MaxYAMLValues. A document that does not
// parse passes: the parser that reads it next says what is wrong with it.
func checkAliases(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil
	}
	budget := MaxYAMLValues
	if !spend(&doc, &budget, 0) {
		return errExcessiveAliasing
	}
	return nil
}

// maxAliasDepth bounds how deep spend follows aliases into aliases; the
// parser refuses alias cycles, but a chain of references may still nest.
const maxAliasDepth = 64

// spend takes one from budget for n and for every value under it,
// following aliases, and reports whether the budget lasted.
func spend(n *yaml.Node, budget *int, depth int) bool {
	if depth > maxAliasDepth {
		return false
	}
	*budget--
	if *budget < 0 {
		return false
	}
	if n.Kind == yaml.AliasNode {
		return n.Alias == nil || spend(n.Alias, budget, depth+1)
	}
	for _, c := range n.Content {
		if !spend(c, budget, depth) {
			return false
		}
	}
	return true
}
