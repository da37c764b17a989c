package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// aliasBomb is a few lines of nested YAML aliases that stand for 9^6
// (half a million) values: under the YAML parser's own guard, which only
// looks at documents that expand past 400,000 decode steps, and enough to
// keep every later step of Load busy for seconds.
const aliasBomb = `a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
job_types: {default: {env: {A: "1"}, preload: [*f]}}
`

// smallAliases is how aliases are meant to be used: shared settings.
const smallAliases = `x-limits: &limits {memory: 1g, cpus: 2}
job_types:
  a: {limits: *limits}
  b: {limits: *limits}
`

func TestFileBounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	huge := write("huge.yaml", "# "+strings.Repeat("x", MaxFileBytes)+"\n")
	bomb := write("bomb.yaml", aliasBomb)
	keysBomb := write("keys.yaml", aliasBomb[:strings.Index(aliasBomb, "job_types")])
	tests := []struct {
		name string
		opts LoadOptions
		want string
	}{
		{"config file too large", LoadOptions{File: huge}, "config: " + huge + ": the file is larger than 1048576 bytes"},
		{"alias bomb", LoadOptions{File: bomb}, "config: " + bomb + ": excessive aliasing: the YAML expands to more than 100000 values"},
		{"keys file too large", LoadOptions{Flags: map[string]string{"auth.api_keys_file": huge}}, "config: auth.api_keys_file: the file is larger than"},
		{"keys file alias bomb", LoadOptions{Flags: map[string]string{"auth.api_keys_file": keysBomb}}, "config: auth.api_keys_file: excessive aliasing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Environ, tt.opts.SearchPaths = []string{}, noSearch(t)
			began := time.Now()
			_, err := Load(tt.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want it to start %q", err, tt.want)
			}
			t.Logf("refused in %s", time.Since(began))
		})
	}
}

func TestAliasesThatShareSettingsLoad(t *testing.T) {
	t.Parallel()
	// Unknown top-level keys are refused, so the anchor lives in a job
	// type's own key here.
	cfg := mustLoad(t, strings.Replace(smallAliases, "x-limits: &limits {memory: 1g, cpus: 2}\njob_types:\n  a: {limits: *limits}",
		"job_types:\n  a: {limits: &limits {memory: 1g, cpus: 2}}", 1), nil, nil)
	reg, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		jt, _ := reg.Get(name)
		if jt.Limits.Memory != 1<<30 || jt.Limits.CPUs != 2 {
			t.Errorf("job type %s: limits %+v, want the shared 1g and 2 CPUs", name, jt.Limits)
		}
	}
}
