package postgres

import (
	"encoding/json"
	"testing"
)

func TestCleanText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"héllo ✓", "héllo ✓"},
		{"a\x00b", "a\uFFFDb"},
		{"bad \xff\xfe end", "bad \uFFFD\uFFFD end"},
		{"\xc3", "\uFFFD"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := CleanText(tt.in); got != tt.want {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCleanJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"b":1,"a":2}`, `{"b":1,"a":2}`},
		{`{"a":"x\u0000y"}`, `{"a":"x\u0000y"}`},
		{"{\"a\":\"\xff\", \"b\": \"ok\"}", `{"a":"�", "b": "ok"}`},
	}
	for _, tt := range tests {
		got := cleanJSON([]byte(tt.in))
		if string(got) != tt.want {
			t.Errorf("cleanJSON(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("cleanJSON(%q) = %q, not JSON", tt.in, got)
		}
	}
}
