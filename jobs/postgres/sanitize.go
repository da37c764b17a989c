package postgres

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// replacement stands in for bytes PostgreSQL cannot store in text or
// jsonb: invalid UTF-8 and NUL.
const replacement = "\uFFFD"

// cleanText makes s storable in a text column. PostgreSQL rejects invalid
// UTF-8 and NUL in text, and program output may hold both; a failed write
// would lose the whole record, so each offending byte sequence becomes
// U+FFFD instead.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, replacement), "\x00", replacement)
}

// cleanTexts applies cleanText to each element of ss; nil becomes empty.
func cleanTexts(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = cleanText(s)
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
