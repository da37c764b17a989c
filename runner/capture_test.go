package runner

import (
	"strings"
	"testing"

	"github.com/tako-run/tako/runner/bootstrap"
)

func endMarker(nonce, payload string) string {
	return bootstrap.EndPrefix(nonce) + payload + "\x1e\n"
}

func TestCapture(t *testing.T) {
	t.Parallel()
	const nonce = "n0nce"
	ready := bootstrap.ReadyMarker
	tests := []struct {
		name      string
		chunks    []string
		limit     int
		want      string
		truncated bool
		exit      int
		ended     bool
	}{
		{
			name:   "plain",
			chunks: []string{"preload noise", ready, "2\n", endMarker(nonce, `{"exit":0,"exc":"","msg":""}`)},
			limit:  100, want: "2\n", ended: true,
		},
		{
			name:   "byte by byte",
			chunks: strings.Split(ready+"hello"+endMarker(nonce, `{"exit":3,"exc":"","msg":""}`), ""),
			limit:  100, want: "hello", exit: 3, ended: true,
		},
		{
			name:   "no trailing newline and marker split",
			chunks: []string{ready + "abc\x1eTAKO-E", "ND " + nonce + ` {"exit":1,"exc":"NameError","msg":"x"}`, "\x1e\n"},
			limit:  100, want: "abc", exit: 1, ended: true,
		},
		{
			name:   "truncated",
			chunks: []string{ready, strings.Repeat("x", 50), strings.Repeat("y", 50), endMarker(nonce, `{"exit":0}`)},
			limit:  60, want: strings.Repeat("x", 50) + strings.Repeat("y", 10), truncated: true, ended: true,
		},
		{
			name:   "other nonce is output",
			chunks: []string{ready, endMarker("forged", `{"exit":0}`), "after"},
			limit:  200, want: endMarker("forged", `{"exit":0}`) + "after",
		},
		{
			name:   "killed before end keeps partial output",
			chunks: []string{ready, "partial\x1eTAKO"},
			limit:  100, want: "partial\x1eTAKO",
		},
		{
			name:   "output after end is dropped",
			chunks: []string{ready, "a", endMarker(nonce, `{"exit":0}`), "late subprocess output"},
			limit:  100, want: "a", ended: true,
		},
		{
			name:   "invalid utf8 passes through",
			chunks: []string{ready, "\xff\xfe", endMarker(nonce, `{"exit":0}`)},
			limit:  100, want: "\xff\xfe", ended: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCapture(nonce, tt.limit)
			for _, ch := range tt.chunks {
				if n, err := c.Write([]byte(ch)); n != len(ch) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			c.flush()
			got, truncated, end := c.result()
			if string(got) != tt.want {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
			if truncated != tt.truncated {
				t.Errorf("truncated = %v, want %v", truncated, tt.truncated)
			}
			if (end != nil) != tt.ended {
				t.Fatalf("end = %+v, want ended %v", end, tt.ended)
			}
			if end != nil && end.ExitCode != tt.exit {
				t.Errorf("exit = %d, want %d", end.ExitCode, tt.exit)
			}
		})
	}
}

func TestCaptureFloodIsBounded(t *testing.T) {
	t.Parallel()
	c := newCapture("n", 1024)
	c.Write([]byte(bootstrap.ReadyMarker))
	chunk := []byte(strings.Repeat("z", 64<<10))
	for i := 0; i < 1600; i++ { // 100 MiB
		c.Write(chunk)
	}
	got, truncated, _ := c.result()
	if len(got) != 1024 || !truncated {
		t.Fatalf("kept %d bytes, truncated %v; want 1024, true", len(got), truncated)
	}
	if c.total != 100<<20 {
		t.Errorf("total = %d, want %d", c.total, 100<<20)
	}
}
