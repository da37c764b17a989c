// Package httpclient holds what tako's command-line clients of a running
// server (tako bench, tako status) share beside package client: the
// one-line clip of a server's text they print.
package httpclient

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
