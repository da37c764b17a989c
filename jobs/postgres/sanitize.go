package postgres

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// replacement stands in for bytes PostgreSQL cannot store in text or
// jsonb: invalid UTF-8 and NUL.
const replacement = "\uFFFD"

// CleanText makes s storable in a text column. PostgreSQL rejects invalid
// UTF-8 and NUL in text, and program output may hold both; a failed write
// would lose the whole record, so each offending byte becomes U+FFFD
// instead. It works byte by byte, so cleaning two pieces that split s
// where a character ends gives the cleaned s: the output log's chunks,
// cleaned one by one, add up to the record's output.
func CleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1, r == 0:
			b.WriteString(replacement)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// cleanTexts applies cleanText to each element of ss; nil becomes empty.
func cleanTexts(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = CleanText(s)
	}
	return out
}

// cleanJSON makes the valid JSON document raw storable in a json column,
// which rejects invalid UTF-8. In valid JSON, bytes outside ASCII occur only
// inside strings, so replacing invalid sequences there by U+FFFD keeps the
// document valid and changes nothing else, key order included. NUL cannot
// occur raw in valid JSON, and its escape \u0000 is fine in json (unlike
// jsonb, which rejects it).
func cleanJSON(raw []byte) []byte {
	if utf8.Valid(raw) {
		return raw
	}
	return bytes.ToValidUTF8(raw, []byte(replacement))
}
