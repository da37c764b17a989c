// Package oneline clips a server's text to one short line, as tako's
// command-line clients of a running server (tako bench, tako status)
// print it.
package oneline

import "strings"

// Clip returns s on one line, its runs of white space made single spaces,
// cut to its first n bytes and "..." when it is longer.
func Clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
