package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/runner"
)

// testGVisorVersion is the gVisor release `make gvisor` builds; keep it equal
// to GVISOR_VERSION in the Makefile.
const testGVisorVersion = "v0.0.0-20260905035102-160fafc42237"

// hostDaemonJSON is a daemon.json like this machine's, whose settings a
// registration must keep.
const hostDaemonJSON = `{"data-root": "/var/lib/docker", "storage-driver": "fuse-overlayfs", "mtu": 1400, "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}`

// runscPath returns where the tests find runsc: $GVISOR_RUNSC (which make
// exports), else where `make gvisor` builds it.
func runscPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GVISOR_RUNSC"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatalf("no home directory to find runsc in (set GVISOR_RUNSC): %v", err)
	}
	return filepath.Join(home, ".cache", "tako", "runsc-"+testGVisorVersion, "runsc")
}

// decodeJSON parses a daemon.json the way Docker would compare it.
func decodeJSON(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, doc)
	}
	return m
}

// fakeRunsc makes an executable file that stands in for runsc where only
// the path matters.
func fakeRunsc(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runsc")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGVisorRegisterMerge checks the edit of daemon.json: the runtime is
// set, every other setting and runtime stays, and a second merge changes
// nothing.
func TestGVisorRegisterMerge(t *testing.T) {
	t.Parallel()
	fifo := []string{"--host-fifo=open"}
	tests := []struct {
		name string
		doc  string
		rt   string
		args []string
		want string // the whole document after the merge, compared as JSON
	}{
		{"missing file", "", "runsc", fifo,
			`{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`},
		{"blank file", " \n", "runsc", fifo,
			`{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`},
		{"empty object", "{}", "runsc", fifo,
			`{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`},
		{"keeps the host's settings", hostDaemonJSON, "runsc", fifo,
			`{"data-root": "/var/lib/docker", "storage-driver": "fuse-overlayfs", "mtu": 1400, "log-driver": "json-file",
			  "log-opts": {"max-size": "10m", "max-file": "3"},
			  "runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`},
		{"keeps other runtimes", `{"mtu": 1400, "runtimes": {"kata": {"path": "/usr/bin/kata", "runtimeArgs": ["--x"]}}}`, "runsc", fifo,
			`{"mtu": 1400, "runtimes": {"kata": {"path": "/usr/bin/kata", "runtimeArgs": ["--x"]},
			  "runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`},
		{"replaces an existing entry", `{"runtimes": {"runsc": {"path": "/old/runsc", "runtimeArgs": ["--debug"], "extra": 1}}}`, "runsc", fifo,
			`{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`},
		{"no args omits runtimeArgs", `{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`, "tako-test-runsc-nofifo", nil,
			`{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]},
			  "tako-test-runsc-nofifo": {"path": "/opt/runsc"}}}`},
		{"removes args", `{"runtimes": {"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--host-fifo=open"]}}}`, "runsc", nil,
			`{"runtimes": {"runsc": {"path": "/opt/runsc"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, changed, err := mergeRuntime([]byte(tt.doc), tt.rt, "/opt/runsc", tt.args)
			if err != nil {
				t.Fatalf("mergeRuntime: %v", err)
			}
			if !changed {
				t.Errorf("changed = false, want true")
			}
			if got, want := decodeJSON(t, out), decodeJSON(t, []byte(tt.want)); !reflect.DeepEqual(got, want) {
				t.Errorf("merged:\n%s\nwant (as JSON):\n%s", out, tt.want)
			}
			// Numbers keep the form they were written in.
			if strings.Contains(tt.doc, "1400") && !strings.Contains(string(out), `"mtu": 1400`) {
				t.Errorf("mtu was rewritten:\n%s", out)
			}
			again, changed, err := mergeRuntime(out, tt.rt, "/opt/runsc", tt.args)
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("second merge = changed %v, err %v, same text %v; want nothing to change", changed, err, bytes.Equal(again, out))
			}
		})
	}
}

// TestGVisorRegisterRemove checks that unregistering removes only its
// runtime, drops an emptied "runtimes", and is a no-op when absent.
func TestGVisorRegisterRemove(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, want string
		changed         bool
	}{
		{"only runtime keeps an empty runtimes", `{"mtu": 1400, "runtimes": {"runsc": {"path": "/opt/runsc"}}}`, `{"mtu": 1400, "runtimes": {}}`, true},
		{"keeps others", `{"runtimes": {"runsc": {"path": "/opt/runsc"}, "kata": {"path": "/k"}}}`, `{"runtimes": {"kata": {"path": "/k"}}}`, true},
		{"absent", hostDaemonJSON, hostDaemonJSON, false},
		{"missing file", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, changed, err := removeRuntime([]byte(tt.doc), "runsc")
			if err != nil {
				t.Fatalf("removeRuntime: %v", err)
			}
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
			if !changed {
				if string(out) != tt.doc {
					t.Errorf("unchanged document was rewritten:\n%s", out)
				}
				return
			}
			if got, want := decodeJSON(t, out), decodeJSON(t, []byte(tt.want)); !reflect.DeepEqual(got, want) {
				t.Errorf("after removal:\n%s\nwant (as JSON):\n%s", out, tt.want)
			}
		})
	}
}

// TestGVisorRegisterEnsureRuntimes checks the edit that lets dockerd drop a
// runtime daemon.json no longer has: an empty "runtimes" is added once.
func TestGVisorRegisterEnsureRuntimes(t *testing.T) {
	t.Parallel()
	out, changed, err := ensureRuntimes([]byte(hostDaemonJSON))
	if err != nil || !changed {
		t.Fatalf("ensureRuntimes = changed %v, err %v; want a change", changed, err)
	}
	want := decodeJSON(t, []byte(hostDaemonJSON))
	want["runtimes"] = map[string]any{}
	if got := decodeJSON(t, out); !reflect.DeepEqual(got, want) {
		t.Errorf("ensureRuntimes:\n%s\nwant (as JSON) %v", out, want)
	}
	again, changed, err := ensureRuntimes(out)
	if err != nil || changed || !bytes.Equal(again, out) {
		t.Errorf("second ensureRuntimes = changed %v, err %v; want nothing to change", changed, err)
	}
	if _, _, err := ensureRuntimes([]byte("[]")); err == nil {
		t.Errorf("ensureRuntimes accepted a JSON array")
	}
}

// TestGVisorRegisterBadFile checks that a daemon.json which is not a JSON
// object is refused with an error naming the file, and left as it was.
func TestGVisorRegisterBadFile(t *testing.T) {
	t.Parallel()
	runsc := fakeRunsc(t)
	tests := []struct{ name, doc, want string }{
		{"invalid JSON", `{"mtu": 1400,`, "not valid JSON"},
		{"array", `[{"runtimes": {}}]`, "not a JSON object but an array"},
		{"two objects", `{} {}`, "text after the top-level object"},
		{"runtimes not an object", `{"runtimes": ["runsc"]}`, `"runtimes" is not a JSON object`},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"register", "unregister"} {
			t.Run(tt.name+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				file := filepath.Join(t.TempDir(), "daemon.json")
				if err := os.WriteFile(file, []byte(tt.doc), 0o644); err != nil {
					t.Fatal(err)
				}
				args := []string{"tako", "gvisor", cmd, "--daemon-json", file, "--no-reload"}
				if cmd == "register" {
					args = append(args, "--path", runsc)
				}
				var stdout, stderr bytes.Buffer
				err := run(context.Background(), args, nil, &stdout, &stderr)
				if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("run = %v; want an error naming %s and saying %q", err, file, tt.want)
				}
				if b, _ := os.ReadFile(file); string(b) != tt.doc {
					t.Errorf("file changed to:\n%s", b)
				}
			})
		}
	}
}

// TestGVisorRegisterFile runs tako gvisor on a file of its own without
// reloading Docker: it creates the file, keeps its mode and other
// settings, says when there is nothing to change, and unregisters.
func TestGVisorRegisterFile(t *testing.T) {
	t.Parallel()
	runsc := fakeRunsc(t)
	dir := t.TempDir()
	ctx := context.Background()
	tako := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := run(ctx, append([]string{"tako", "gvisor"}, args...), nil, &stdout, &stderr); err != nil {
			t.Fatalf("tako gvisor %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}

	t.Run("missing file", func(t *testing.T) {
		file := filepath.Join(dir, "new", "daemon.json")
		out := tako("register", "--path", runsc, "--daemon-json", file, "--no-reload")
		if want := "registered runtime runsc (" + runsc + ", args --host-fifo=open) in " + file; !strings.Contains(out, want) {
			t.Errorf("output %q, want %q", out, want)
		}
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("new file has mode %v, want 0644", fi.Mode().Perm())
		}
	})

	t.Run("existing file", func(t *testing.T) {
		file := filepath.Join(dir, "daemon.json")
		if err := os.WriteFile(file, []byte(hostDaemonJSON), 0o640); err != nil {
			t.Fatal(err)
		}
		tako("register", "--path", runsc, "--daemon-json", file, "--no-reload")
		out := tako("register", "--path", runsc, "--name", "tako-test-runsc-nofifo", "--no-args", "--daemon-json", file, "--no-reload")
		if want := "registered runtime tako-test-runsc-nofifo (" + runsc + ", no args)"; !strings.Contains(out, want) {
			t.Errorf("output %q, want %q", out, want)
		}
		first, _ := os.ReadFile(file)
		want := decodeJSON(t, []byte(hostDaemonJSON))
		want["runtimes"] = map[string]any{
			"runsc":                  map[string]any{"path": runsc, "runtimeArgs": []any{"--host-fifo=open"}},
			"tako-test-runsc-nofifo": map[string]any{"path": runsc},
		}
		if got := decodeJSON(t, first); !reflect.DeepEqual(got, want) {
			t.Errorf("daemon.json:\n%s\nwant (as JSON) %v", first, want)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want the file's own 0640", fi.Mode().Perm())
		}

		out = tako("register", "--path", runsc, "--daemon-json", file, "--no-reload")
		if !strings.Contains(out, "already registered") || strings.Contains(out, "SIGHUP") {
			t.Errorf("second register said %q, want that nothing changed", out)
		}
		if again, _ := os.ReadFile(file); !bytes.Equal(again, first) {
			t.Errorf("second register rewrote the file:\n%s", again)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(dir, ".daemon.json.tako-*")); len(leftovers) > 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}

		tako("unregister", "--name", "tako-test-runsc-nofifo", "--daemon-json", file, "--no-reload")
		out = tako("unregister", "--daemon-json", file, "--no-reload")
		if want := "removed runtime runsc from " + file; !strings.Contains(out, want) {
			t.Errorf("output %q, want %q", out, want)
		}
		after, _ := os.ReadFile(file)
		want = decodeJSON(t, []byte(hostDaemonJSON))
		want["runtimes"] = map[string]any{}
		if got := decodeJSON(t, after); !reflect.DeepEqual(got, want) {
			t.Errorf("after unregistering both:\n%s\nwant the original settings and an empty runtimes", after)
		}
		out = tako("unregister", "--daemon-json", file, "--no-reload")
		if !strings.Contains(out, "nothing to change") {
			t.Errorf("second unregister said %q, want that nothing changed", out)
		}
	})
}

// TestGVisorRegisterFlags checks that bad command lines stop before any
// file is touched, with an error naming the flag at fault.
func TestGVisorRegisterFlags(t *testing.T) {
	t.Parallel()
	runsc := fakeRunsc(t)
	notExec := filepath.Join(t.TempDir(), "runsc")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing --path", []string{"register"}, "--path is required"},
		{"empty --path", []string{"register", "--path", ""}, "--path is required"},
		{"--path does not exist", []string{"register", "--path", "/nonexistent/runsc"}, "--path /nonexistent/runsc does not exist"},
		{"--path not executable", []string{"register", "--path", notExec}, "--path " + notExec + " is not executable"},
		{"--path a directory", []string{"register", "--path", t.TempDir()}, "is not a regular file"},
		{"--name with a space", []string{"register", "--path", runsc, "--name", "run sc"}, `--name "run sc" is not a runtime name`},
		{"--name starting with a dash", []string{"register", "--path", runsc, "--name", "-runsc"}, `--name "-runsc" is not a runtime name`},
		{"--name empty", []string{"unregister", "--name", ""}, `--name "" is not a runtime name`},
		{"--name with a slash", []string{"unregister", "--name", "../runsc"}, `--name "../runsc" is not a runtime name`},
		{"--name runc", []string{"register", "--path", runsc, "--name", "runc"}, "--name runc"},
		{"--arg and --no-args", []string{"register", "--path", runsc, "--arg", "--debug", "--no-args"}, "--arg and --no-args"},
		{"empty --arg", []string{"register", "--path", runsc, "--arg", ""}, "-arg"},
		{"--path on unregister", []string{"unregister", "--path", runsc}, "-path"},
		{"stray argument", []string{"register", "--path", runsc, "extra"}, `unexpected argument "extra"`},
		{"unknown subcommand", []string{"install"}, "usage"},
		{"no subcommand", nil, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "daemon.json")
			args := append([]string{"tako", "gvisor"}, tt.args...)
			if len(tt.args) > 0 {
				args = append(args, "--daemon-json", file, "--no-reload")
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, nil, &stdout, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error()+stderr.String(), tt.want) {
				t.Errorf("run(%q) = %v (stderr %q); want a usage error containing %q", tt.args, err, stderr.String(), tt.want)
			}
			if _, err := os.Stat(file); err == nil {
				t.Errorf("%s was written despite the error", file)
			}
		})
	}
}

// TestGVisorRegisterDockerdPID checks how tako finds dockerd: the pid file
// when it names dockerd, else the only dockerd in /proc, never a guess.
func TestGVisorRegisterDockerdPID(t *testing.T) {
	t.Parallel()
	proc := func(t *testing.T, comms map[string]string) string {
		dir := t.TempDir()
		for pid, comm := range comms {
			if err := os.MkdirAll(filepath.Join(dir, pid), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, pid, "comm"), []byte(comm+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	pidFile := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "docker.pid")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		pidFile string
		comms   map[string]string
		want    int
		wantErr string
	}{
		{"pid file", "42", map[string]string{"42": "dockerd", "7": "dockerd"}, 42, ""},
		{"stale pid file", "42", map[string]string{"42": "bash", "7": "dockerd"}, 7, ""},
		{"no pid file", "", map[string]string{"1": "init", "7": "dockerd"}, 7, ""},
		{"none", "", map[string]string{"1": "init", "7": "containerd"}, 0, "no dockerd process"},
		{"several", "", map[string]string{"7": "dockerd", "8": "dockerd"}, 0, "2 dockerd processes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pf := filepath.Join(t.TempDir(), "missing.pid")
			if tt.pidFile != "" {
				pf = pidFile(t, tt.pidFile)
			}
			got, err := dockerdPID(pf, proc(t, tt.comms))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("dockerdPID = %d, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("dockerdPID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestGVisorRegisterDocker registers the real runsc with the real Docker
// daemon under a name of its own, checks that docker info lists it with
// its path and arguments, then unregisters it and checks it is gone and
// that the daemon's other settings survived both edits.
func TestGVisorRegisterDocker(t *testing.T) {
	ci := os.Getenv("CI") != ""
	if os.Geteuid() != 0 && !ci {
		t.Skip("editing /etc/docker/daemon.json and signalling dockerd needs root")
	}
	runsc := runscPath(t)
	if fi, err := os.Stat(runsc); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("runsc not found at %s (%v): run 'make gvisor' or set GVISOR_RUNSC", runsc, err)
	}
	dc, err := runner.NewDockerClient("")
	if err == nil {
		pingCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = dc.Ping(pingCtx)
		cancel()
	}
	if err != nil {
		if ci {
			t.Fatalf("Docker engine not available in CI: %v", err)
		}
		t.Skipf("Docker engine not available: %v", err)
	}
	t.Cleanup(func() { dc.Close() })

	const daemonJSON = "/etc/docker/daemon.json"
	settings := func() map[string]any {
		t.Helper()
		b, err := os.ReadFile(daemonJSON)
		if errors.Is(err, os.ErrNotExist) {
			return map[string]any{}
		}
		if err != nil {
			t.Fatal(err)
		}
		m := decodeJSON(t, b)
		delete(m, "runtimes")
		return m
	}
	before := settings()

	suffix := make([]byte, 4)
	rand.Read(suffix)
	name := "tako-test-register-" + hex.EncodeToString(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tako := func(ctx context.Context, args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"tako", "gvisor"}, args...), nil, &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := tako(ctx, "unregister", "--name", name, "--daemon-json", daemonJSON); err != nil {
			t.Errorf("cleanup: tako gvisor unregister %s: %v\n%s", name, err, out)
		}
	})

	out, err := tako(ctx, "register", "--path", runsc, "--name", name, "--daemon-json", daemonJSON)
	if err != nil {
		t.Fatalf("tako gvisor register: %v\n%s", err, out)
	}
	for _, want := range []string{"registered runtime " + name, "reloaded dockerd (pid ", "docker reports runtime " + name} {
		if !strings.Contains(out, want) {
			t.Errorf("register output lacks %q:\n%s", want, out)
		}
	}
	info, err := dc.Info(ctx)
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	rt, ok := info.Runtimes[name]
	if !ok || rt.Path != runsc || !reflect.DeepEqual(rt.Args, []string{"--host-fifo=open"}) {
		t.Errorf("docker info runtime %s = %+v (listed %v); want path %s, args [--host-fifo=open]", name, rt, ok, runsc)
	}

	out, err = tako(ctx, "register", "--path", runsc, "--name", name, "--daemon-json", daemonJSON)
	if err != nil {
		t.Fatalf("second tako gvisor register: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already registered") || strings.Contains(out, "reloaded dockerd") {
		t.Errorf("second register did something:\n%s", out)
	}

	out, err = tako(ctx, "unregister", "--name", name, "--daemon-json", daemonJSON)
	if err != nil {
		t.Fatalf("tako gvisor unregister: %v\n%s", err, out)
	}
	if !strings.Contains(out, "docker no longer reports runtime "+name) {
		t.Errorf("unregister output:\n%s", out)
	}
	if info, err = dc.Info(ctx); err != nil {
		t.Fatalf("docker info: %v", err)
	}
	if _, ok := info.Runtimes[name]; ok {
		t.Errorf("docker info still lists runtime %s after unregister", name)
	}
	if after := settings(); !reflect.DeepEqual(after, before) {
		t.Errorf("daemon.json settings changed:\n before %v\n after  %v", before, after)
	}
}
