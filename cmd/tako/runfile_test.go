package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-run/tako/client"
)

// writeProgram writes a file named name holding text into a fresh
// directory and returns its path.
func writeProgram(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// takoRun runs tako with args against s and returns its stdout, its
// stderr and the exit code the process would have.
func takoRun(t *testing.T, s *testServer, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	out, errOut, err := runCmd(t.Context(), []string{"TAKO_URL=" + s.url}, args...)
	code, _ = exitCode(err)
	if err != nil {
		errOut += "\n[error: " + err.Error() + "]"
	}
	return out, errOut, code
}

// TestRunFile runs Python files with tako run on the shared server.
func TestRunFile(t *testing.T) {
	s := startServer(t) // the images, built once before the parallel tests start

	t.Run("exit code and streams apart", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "fail.py", "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
		out, errOut, code := takoRun(t, s, "run", prog)
		if code != 3 {
			t.Errorf("exit code %d, want 3\nstderr: %s", code, errOut)
		}
		if out != "to stdout\n" {
			t.Errorf("stdout %q, want only the program's stdout", out)
		}
		if !strings.Contains(errOut, "to stderr\n") || strings.Contains(errOut, "to stdout") {
			t.Errorf("stderr %q, want the program's stderr without its stdout", errOut)
		}
		if !strings.Contains(errOut, "tako: job ") || !strings.Contains(errOut, " queued\n") {
			t.Errorf("stderr %q, want a plain progress line off a terminal", errOut)
		}
	})

	t.Run("input, artifacts and result", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "art.py", `import json
data = json.load(open('/input/data.json'))
open('/output/greeting.txt', 'w').write('hello ' + data['name'])
json.dump({'n': data['n'] * 2}, open('/output/result.json', 'w'))
print('done')
`)
		input := writeProgram(t, "data.json", `{"name": "tako", "n": 21}`)
		dir := filepath.Join(t.TempDir(), "out")
		// Flags after the file work too.
		out, errOut, code := takoRun(t, s, "run", "--input", input, prog, "--out", dir)
		if code != 0 {
			t.Fatalf("exit code %d, want 0\nstderr: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "done\n") || !strings.Contains(out, `"n": 42`) {
			t.Errorf("stdout %q, want the program's output, then its result", out)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "greeting.txt")); err != nil || string(b) != "hello tako" {
			t.Errorf("artifact greeting.txt: %q, %v", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "result.json")); err != nil || !strings.Contains(string(b), `"n"`) {
			t.Errorf("result.json in --out: %q, %v", b, err)
		}
	})

	t.Run("input from standard input", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "in.py", "import json\nprint(json.load(open('/input/data.json'))['word'])\n")
		var stdout, stderr bytes.Buffer
		err := runFile(t.Context(), []string{"--input", "-", prog}, []string{"TAKO_URL=" + s.url}, strings.NewReader(`{"word": "piped"}`), &stdout, &stderr)
		if err != nil || stdout.String() != "piped\n" {
			t.Errorf("tako run --input -: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
		}
	})

	t.Run("async, then logs", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "later.py", "import sys\nprint('later out')\nprint('later err', file=sys.stderr)\nsys.exit(4)\n")
		out, errOut, code := takoRun(t, s, "run", "--async", prog)
		id := strings.TrimSpace(out)
		if code != 0 || id == "" || strings.Contains(id, "\n") || errOut != "" {
			t.Fatalf("tako run --async: exit code %d, stdout %q, stderr %q; want the job id alone", code, out, errOut)
		}
		out, errOut, code = takoRun(t, s, "logs", id)
		if code != 4 || out != "later out\n" || !strings.Contains(errOut, "later err\n") {
			t.Errorf("tako logs %s: exit code %d, stdout %q, stderr %q; want 4, the output", id, code, out, errOut)
		}
	})

	t.Run("job that does not finish is tako's failure", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "slow.py", "import time\nprint('start', flush=True)\ntime.sleep(30)\n")
		out, errOut, code := takoRun(t, s, "run", "--timeout", "1s", prog)
		if code != exitTakoFailure || !strings.Contains(errOut, "timeout") {
			t.Errorf("exit code %d, stdout %q, stderr %q; want %d naming the timeout", code, out, errOut, exitTakoFailure)
		}
	})

	t.Run("interrupt cancels the job", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "wait.py", "import time\nprint('waiting')\ntime.sleep(60)\n")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Ctrl-C once the program has printed: it is running.
		stdout := &onWrite{f: cancel}
		var stderr bytes.Buffer
		err := run(ctx, []string{"tako", "run", prog}, []string{"TAKO_URL=" + s.url}, stdout, &stderr)
		code, _ := exitCode(err)
		if code != exitInterrupted || err == nil || !strings.Contains(err.Error(), "cancelled") {
			t.Fatalf("exit code %d, error %v, stderr %q; want %d, the job cancelled", code, err, stderr.String(), exitInterrupted)
		}
		id := strings.Fields(strings.TrimPrefix(err.Error(), "interrupted: job "))[0]
		s.waitStatus(t, id, "cancelled", 30*time.Second)
	})

	t.Run("bad command lines", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "ok.py", "print(1)\n")
		notObject := writeProgram(t, "list.json", `[1, 2]`)
		tests := []struct {
			args []string
			want string // in the error
		}{
			{[]string{"run"}, "needs the Python FILE"},
			{[]string{"run", "/nonexistent/prog.py"}, "/nonexistent/prog.py"},
			{[]string{"run", "--input", "/nonexistent/data.json", prog}, "--input: open /nonexistent/data.json"},
			{[]string{"run", "--input", notObject, prog}, "--input: " + notObject + " does not hold a JSON object"},
			{[]string{"run", "--requirements", "./nonexistent-reqs.txt", prog}, "--requirements: stat ./nonexistent-reqs.txt"},
			{[]string{"run", "--timeout", "-1s", prog}, "--timeout must be positive"},
			{[]string{"run", "--bogus", prog}, "flag provided but not defined: -bogus"},
			{[]string{"run", "--url", "ftp://example.com", prog}, "--url must be an http:// or https:// URL"},
			{[]string{"run", "--async", "--out", "d", prog}, "--out cannot be used with --async"},
			{[]string{"run", prog, prog}, "takes one FILE"},
			{[]string{"logs"}, "tako logs takes one JOB_ID"},
		}
		for _, tt := range tests {
			_, errOut, code := takoRun(t, s, tt.args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("tako %q: exit code %d, stderr %q; want %d and %q", tt.args, code, errOut, exitUsage, tt.want)
			}
		}
	})

	t.Run("unreachable server", func(t *testing.T) {
		t.Parallel()
		prog := writeProgram(t, "ok.py", "print(1)\n")
		out, errOut, err := runCmd(t.Context(), nil, "run", "--url", "http://127.0.0.1:1", prog)
		if code, _ := exitCode(err); code != exitTakoFailure || !strings.Contains(err.Error(), "http://127.0.0.1:1") {
			t.Errorf("exit code %d, error %v, stdout %q, stderr %q; want %d naming the server", code, err, out, errOut, exitTakoFailure)
		}
	})
}

func TestReadRequirements(t *testing.T) {
	t.Parallel()
	file := writeProgram(t, "requirements.txt", "# pinned\nnumpy==2.1.0\n\npandas[excel]>=2,<3  # data\n")
	withOption := writeProgram(t, "opts.txt", "--index-url https://example.com\nnumpy\n")
	tests := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{"numpy", []string{"numpy"}, ""},
		{"numpy, pandas>=2", []string{"numpy", "pandas>=2"}, ""},
		{file, []string{"numpy==2.1.0", "pandas[excel]>=2,<3"}, ""},
		{"numpy,,pandas", nil, "requirement 2 of"},
		{withOption, nil, "pip options"},
		{"missing.txt", nil, "--requirements: stat missing.txt"},
		{t.TempDir(), nil, "is not a regular file"},
	}
	for _, tt := range tests {
		got, err := readRequirements(tt.value)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("readRequirements(%q) error = %v, want %q", tt.value, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || !slices.Equal(got, tt.want)):
			t.Errorf("readRequirements(%q) = %q, %v; want %q", tt.value, got, err, tt.want)
		}
	}
}

func TestJobExit(t *testing.T) {
	t.Parallel()
	code := func(n int) *int { return &n }
	tests := []struct {
		name string
		x    client.Execution
		want int
	}{
		{"succeeded", client.Execution{Run: client.Run{Status: client.StatusSucceeded, ExitCode: code(0)}}, 0},
		{"failed with its code", client.Execution{Run: client.Run{Status: client.StatusFailed, ExitCode: code(7)}}, 7},
		{"timeout", client.Execution{Run: client.Run{Status: client.StatusTimeout, Error: &client.ExecError{Type: "timeout"}}}, exitTakoFailure},
		{"oom with a code", client.Execution{Run: client.Run{Status: client.StatusOOM, ExitCode: code(137)}}, exitTakoFailure},
		{"cancelled", client.Execution{Run: client.Run{Status: client.StatusCancelled}}, exitTakoFailure},
	}
	for _, tt := range tests {
		if got, _ := exitCode(jobExit(&tt.x)); got != tt.want {
			t.Errorf("%s: exit code %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	var w bytes.Buffer
	p := newProgress(&w, "j1", false)
	p.tty = true // drawn by hand: no goroutine
	p.set("running")
	p.print(&w, "out\n")
	p.set("queued") // drawn again after a whole line
	p.print(&w, "partial")
	p.mu.Lock()
	p.draw() // not over a partial line
	p.mu.Unlock()
	p.close()
	got := w.String()
	if !strings.Contains(got, "job j1 running") || !strings.Contains(got, "\r\033[Kout\n") || !strings.HasSuffix(got, "\r\033[Kpartial") {
		t.Errorf("terminal output %q", got)
	}
}

// onWrite is a writer that calls f after its first write.
type onWrite struct {
	once sync.Once
	f    func()
}

func (w *onWrite) Write(p []byte) (int, error) {
	w.once.Do(w.f)
	return len(p), nil
}
