package runner

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCollectOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("result.json", `{"a": [1, 2]}`)
	write("a.txt", "aaaa")
	write("b.txt", "bbbb")
	write("big.bin", strings.Repeat("x", 100)) // over the per-file cap: skipped
	write(".hidden", "h")
	write("c.txt", "cccc") // over the count cap
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	got := collectOutput(dir, OutputLimits{MaxArtifactBytes: 50, MaxArtifacts: 2, MaxTotalArtifactBytes: 1000})
	if string(got.output) != `{"a":[1,2]}` || got.outputErr != "" {
		t.Errorf("output %s, error %q", got.output, got.outputErr)
	}
	var names []string
	for _, a := range got.artifacts {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "a.txt,b.txt" {
		t.Errorf("artifacts %v, want a.txt,b.txt", names)
	}
	if len(got.contents) != 2 || string(got.contents[0]) != "aaaa" || string(got.contents[1]) != "bbbb" {
		t.Errorf("contents %q", got.contents)
	}
	if !got.truncated {
		t.Error("files left out by the count cap, but not truncated")
	}

	got = collectOutput(dir, OutputLimits{MaxArtifactBytes: 50, MaxArtifacts: 10, MaxTotalArtifactBytes: 6})
	if len(got.artifacts) != 1 || !got.truncated {
		t.Errorf("total cap: %d artifacts (truncated %v), want 1, truncated", len(got.artifacts), got.truncated)
	}

	// Only the per-file cap leaves big.bin out: still truncated.
	got = collectOutput(dir, OutputLimits{MaxArtifactBytes: 50, MaxArtifacts: 10, MaxTotalArtifactBytes: 1000})
	if len(got.artifacts) != 3 || !got.truncated {
		t.Errorf("per-file cap: %d artifacts (truncated %v), want 3, truncated", len(got.artifacts), got.truncated)
	}
	// Links, directories, FIFOs and hidden files are never artifacts;
	// leaving them out truncates nothing.
	os.Remove(filepath.Join(dir, "big.bin"))
	got = collectOutput(dir, OutputLimits{MaxArtifactBytes: 50, MaxArtifacts: 10, MaxTotalArtifactBytes: 1000})
	if len(got.artifacts) != 3 || got.truncated {
		t.Errorf("within every cap: %d artifacts (truncated %v), want 3, not truncated", len(got.artifacts), got.truncated)
	}
}

func TestCollectResultErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(dir string)
		wantErr string
	}{
		{"absent", func(string) {}, ""},
		{"invalid", func(d string) { os.WriteFile(filepath.Join(d, "result.json"), []byte("{nope"), 0o644) }, "not valid JSON"},
		{"symlink", func(d string) { os.Symlink("/etc/hostname", filepath.Join(d, "result.json")) }, "not a regular file"},
		{"too large", func(d string) {
			os.WriteFile(filepath.Join(d, "result.json"), []byte(`"`+strings.Repeat("x", 100)+`"`), 0o644)
		}, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tt.setup(dir)
			got := collectOutput(dir, OutputLimits{MaxArtifactBytes: 50, MaxArtifacts: 10, MaxTotalArtifactBytes: 100})
			if got.output != nil || !strings.Contains(got.outputErr, tt.wantErr) || (tt.wantErr == "" && got.outputErr != "") {
				t.Errorf("output %s, error %q; want error containing %q", got.output, got.outputErr, tt.wantErr)
			}
		})
	}
}
