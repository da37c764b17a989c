package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/system"
)

// gvisorUsage is the help text of tako gvisor.
const gvisorUsage = `usage: tako gvisor register --path RUNSC [--name NAME] [--arg ARG]... [--no-args] [--daemon-json FILE] [--no-reload]
       tako gvisor unregister [--name NAME] [--daemon-json FILE] [--no-reload]

register merges {"runtimes": {NAME: {"path": RUNSC, "runtimeArgs": [ARG...]}}}
into Docker's daemon.json, keeping every other setting, then sends SIGHUP to
dockerd (no restart) and waits until docker reports the runtime. Without --arg
the runtime gets --host-fifo=open, which tako's FIFO transport needs under
gVisor. unregister removes the entry the same way. Running either twice
changes nothing the second time.

Build runsc as pure Go (the cgo build does not run here):
  CGO_ENABLED=0 GOBIN=DIR go install gvisor.dev/gvisor/runsc@VERSION
or run 'make gvisor', which builds it and registers it.
`

const (
	// defaultDaemonJSON is where Docker reads its daemon configuration.
	defaultDaemonJSON = "/etc/docker/daemon.json"
	// defaultRuntimeName is the runtime name tako's strict mode uses.
	defaultRuntimeName = "runsc"
	// defaultRunscArg lets gVisor open the host FIFOs tako's transport
	// uses; without it a job under gVisor hangs.
	defaultRunscArg = "--host-fifo=open"
	// dockerPIDFile is where dockerd writes its pid.
	dockerPIDFile = "/var/run/docker.pid"
	// runtimeReloadTimeout bounds the wait for dockerd to report a change
	// after SIGHUP.
	runtimeReloadTimeout = 20 * time.Second
	// runtimePollInterval is how often docker info is asked meanwhile.
	runtimePollInterval = 200 * time.Millisecond
)

// runtimeNamePattern is what tako accepts as a Docker runtime name.
var runtimeNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// gvisorConfig is a validated tako gvisor register or unregister command line.
type gvisorConfig struct {
	Register   bool     // register; false means unregister
	Name       string   // runtime name
	Path       string   // absolute path of runsc (register only)
	Args       []string // runtimeArgs; empty means none (register only)
	DaemonJSON string   // Docker's daemon.json
	Reload     bool     // send SIGHUP to dockerd and wait for docker info to agree
}

// runGVisor registers gVisor's runsc as a Docker runtime, or removes it.
func runGVisor(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, gvisorUsage)
		return errUsage
	}
	switch args[0] {
	case "register", "unregister":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, gvisorUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown gvisor command %q\n\n%s", args[0], gvisorUsage)
		return errUsage
	}
	cfg, ok, err := parseGVisorFlags(args[0], args[1:], stderr)
	if err != nil || !ok {
		return err
	}
	return gvisorApply(ctx, cfg, environ, stdout)
}

// parseGVisorFlags reads and checks the arguments of tako gvisor cmd
// (register or unregister). Every error names the flag at fault and wraps
// errUsage; ok is false (with a nil error) when the user asked for help.
func parseGVisorFlags(cmd string, args []string, stderr io.Writer) (cfg gvisorConfig, ok bool, err error) {
	cfg.Register = cmd == "register"
	set := newFlagSet("tako gvisor "+cmd, gvisorUsage+"\nFlags:\n", stderr)
	var noArgs, noReload bool
	set.StringVar(&cfg.Name, "name", defaultRuntimeName, "Docker runtime `NAME`")
	set.StringVar(&cfg.DaemonJSON, "daemon-json", defaultDaemonJSON, "Docker's daemon configuration `FILE`")
	set.BoolVar(&noReload, "no-reload", false, "only edit the file: do not send SIGHUP to dockerd")
	if cfg.Register {
		set.StringVar(&cfg.Path, "path", "", "`PATH` of the runsc binary to register (required)")
		set.Func("arg", "runtime argument `ARG`, repeatable (default: "+defaultRunscArg+")", func(v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			cfg.Args = append(cfg.Args, v)
			return nil
		})
		set.BoolVar(&noArgs, "no-args", false, "register without any runtimeArgs")
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, nil
		}
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.Reload = !noReload
	bad := func(format string, a ...any) (gvisorConfig, bool, error) {
		return cfg, false, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case set.NArg() > 0:
		return bad("unexpected argument %q (tako gvisor %s takes only flags)", set.Arg(0), cmd)
	case !runtimeNamePattern.MatchString(cfg.Name):
		return bad("--name %q is not a runtime name: use letters, digits, '_', '.' and '-', starting with a letter or digit", cfg.Name)
	case cfg.Name == "runc":
		return bad("--name runc is Docker's own runtime and cannot be replaced")
	case cfg.DaemonJSON == "":
		return bad("--daemon-json must not be empty")
	}
	if !cfg.Register {
		return cfg, true, nil
	}
	switch {
	case noArgs && len(cfg.Args) > 0:
		return bad("--arg and --no-args cannot be used together")
	case !noArgs && len(cfg.Args) == 0:
		cfg.Args = []string{defaultRunscArg}
	}
	if cfg.Path == "" {
		return bad("--path is required: the runsc binary to register (build it with 'make gvisor')")
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return bad("--path %s: %v", cfg.Path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad("--path %s does not exist (build runsc with 'make gvisor')", cfg.Path)
	case err != nil:
		return bad("--path %s: %v", cfg.Path, err)
	case !fi.Mode().IsRegular():
		return bad("--path %s is not a regular file", cfg.Path)
	case fi.Mode().Perm()&0o111 == 0:
		return bad("--path %s is not executable", cfg.Path)
	}
	cfg.Path = abs
	return cfg, true, nil
}

// gvisorApply edits the daemon configuration as cfg says and, unless
// cfg.Reload is false, makes dockerd load it and waits until docker info
// agrees.
func gvisorApply(ctx context.Context, cfg gvisorConfig, environ []string, stdout io.Writer) error {
	var (
		edit    func([]byte) ([]byte, bool, error)
		applied func(system.Info) bool
		desc    = runtimeDescription(cfg.Path, cfg.Args)
	)
	if cfg.Register {
		edit = func(doc []byte) ([]byte, bool, error) { return mergeRuntime(doc, cfg.Name, cfg.Path, cfg.Args) }
		applied = func(info system.Info) bool {
			rt, ok := info.Runtimes[cfg.Name]
			return ok && rt.Path == cfg.Path && slices.Equal(rt.Args, cfg.Args)
		}
	} else {
		edit = func(doc []byte) ([]byte, bool, error) { return removeRuntime(doc, cfg.Name) }
		applied = func(info system.Info) bool {
			_, ok := info.Runtimes[cfg.Name]
			return !ok
		}
	}

	changed, err := editDaemonJSON(cfg.DaemonJSON, edit)
	if err != nil {
		return err
	}
	switch {
	case cfg.Register && changed:
		fmt.Fprintf(stdout, "registered runtime %s (%s) in %s\n", cfg.Name, desc, cfg.DaemonJSON)
	case cfg.Register:
		fmt.Fprintf(stdout, "runtime %s (%s) is already registered in %s: nothing to change\n", cfg.Name, desc, cfg.DaemonJSON)
	case changed:
		fmt.Fprintf(stdout, "removed runtime %s from %s\n", cfg.Name, cfg.DaemonJSON)
	default:
		fmt.Fprintf(stdout, "runtime %s is not in %s: nothing to change\n", cfg.Name, cfg.DaemonJSON)
	}
	if !cfg.Reload {
		if changed {
			fmt.Fprintln(stdout, "not reloading dockerd (--no-reload): send it SIGHUP to apply the change")
		}
		return nil
	}

	dc, err := dockerClient(ctx, environ)
	if err != nil {
		return fmt.Errorf("%s is up to date but dockerd was not reloaded: %w", cfg.DaemonJSON, err)
	}
	defer dc.Close()
	done := func() (bool, error) {
		infoCtx, cancel := context.WithTimeout(ctx, doctorTimeout)
		defer cancel()
		info, err := dc.Info(infoCtx)
		if err != nil {
			return false, fmt.Errorf("docker info: %w", err)
		}
		return applied(info), nil
	}
	// settled reports, and says so, when docker shows the change.
	settled := func() (bool, error) {
		ok, err := done()
		switch {
		case err != nil || !ok:
		case cfg.Register:
			fmt.Fprintf(stdout, "docker reports runtime %s\n", cfg.Name)
		default:
			fmt.Fprintf(stdout, "docker no longer reports runtime %s\n", cfg.Name)
		}
		return ok, err
	}
	// An unchanged file may still be newer than what dockerd loaded (edited
	// with --no-reload, or by hand): reload only when docker disagrees.
	if !changed {
		if ok, err := settled(); err != nil || ok {
			return err
		}
		// docker lists a runtime the file lacks: dockerd drops it on
		// SIGHUP only when the file has a "runtimes" key.
		if !cfg.Register {
			added, err := editDaemonJSON(cfg.DaemonJSON, ensureRuntimes)
			if err != nil {
				return err
			}
			if added {
				fmt.Fprintf(stdout, "added an empty \"runtimes\" to %s so that dockerd drops runtime %s\n", cfg.DaemonJSON, cfg.Name)
			}
		}
	}

	pid, err := dockerdPID(dockerPIDFile, "/proc")
	if err != nil {
		return fmt.Errorf("reload dockerd: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload dockerd: send SIGHUP to pid %d: %w", pid, err)
	}
	fmt.Fprintf(stdout, "reloaded dockerd (pid %d)\n", pid)

	deadline := time.NewTimer(runtimeReloadTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(runtimePollInterval)
	defer tick.Stop()
	for {
		if ok, err := settled(); err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for dockerd to reload: %w", ctx.Err())
		case <-deadline.C:
			// dockerd keeps its old configuration when it cannot load the
			// new one, and says why only in its log.
			return fmt.Errorf("dockerd (pid %d) did not apply the change to runtime %s within %s of SIGHUP: its log says why it rejected %s (journalctl -u docker)",
				pid, cfg.Name, runtimeReloadTimeout, cfg.DaemonJSON)
		case <-tick.C:
		}
	}
}

// runtimeDescription is how the progress lines show a runtime.
func runtimeDescription(path string, args []string) string {
	if len(args) == 0 {
		return path + ", no args"
	}
	return path + ", args " + strings.Join(args, " ")
}

// mergeRuntime returns doc, the text of a Docker daemon.json, with runtime
// name set to path and args, leaving every other setting and runtime as it
// was. An empty doc counts as {}; runtimeArgs is left out when args is
// empty. changed is false, and out is doc itself, when doc already says
// exactly that. The error says what is wrong when doc is not a JSON object
// or its "runtimes" is not one.
func mergeRuntime(doc []byte, name, path string, args []string) (out []byte, changed bool, err error) {
	conf, runtimes, err := parseDaemonJSON(doc)
	if err != nil {
		return nil, false, err
	}
	entry := map[string]any{"path": path}
	if len(args) > 0 {
		list := make([]any, len(args))
		for i, a := range args {
			list[i] = a
		}
		entry["runtimeArgs"] = list
	}
	if old, ok := runtimes[name]; ok && reflect.DeepEqual(old, entry) {
		return doc, false, nil
	}
	runtimes[name] = entry
	conf["runtimes"] = runtimes
	out, err = encodeDaemonJSON(conf)
	return out, err == nil, err
}

// removeRuntime returns doc, the text of a Docker daemon.json, without
// runtime name, leaving everything else as it was. An emptied "runtimes"
// stays as {}: dockerd replaces its runtimes on SIGHUP only when
// daemon.json has the key, so dropping it would keep the runtime loaded.
// changed is false, and out is doc itself, when name is not there. Errors
// are as for mergeRuntime.
func removeRuntime(doc []byte, name string) (out []byte, changed bool, err error) {
	conf, runtimes, err := parseDaemonJSON(doc)
	if err != nil {
		return nil, false, err
	}
	if _, ok := runtimes[name]; !ok {
		return doc, false, nil
	}
	delete(runtimes, name)
	out, err = encodeDaemonJSON(conf)
	return out, err == nil, err
}

// ensureRuntimes returns doc, the text of a Docker daemon.json, with an
// empty "runtimes" added when it has none, so that a SIGHUP makes dockerd
// drop runtimes it loaded earlier. changed is false, and out is doc
// itself, when the key is there. Errors are as for mergeRuntime.
func ensureRuntimes(doc []byte) (out []byte, changed bool, err error) {
	conf, runtimes, err := parseDaemonJSON(doc)
	if err != nil {
		return nil, false, err
	}
	if _, ok := conf["runtimes"]; ok {
		return doc, false, nil
	}
	conf["runtimes"] = runtimes
	out, err = encodeDaemonJSON(conf)
	return out, err == nil, err
}

// parseDaemonJSON decodes a daemon.json into a generic object, keeping
// numbers as written, and returns its "runtimes" object (empty when absent).
func parseDaemonJSON(doc []byte) (conf, runtimes map[string]any, err error) {
	conf = map[string]any{}
	if len(bytes.TrimSpace(doc)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("not valid JSON: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, nil, errors.New("not valid JSON: text after the top-level object")
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("not a JSON object but %s", jsonKind(v))
		}
		conf = obj
	}
	runtimes = map[string]any{}
	if v, ok := conf["runtimes"]; ok {
		obj, isObj := v.(map[string]any)
		if !isObj {
			return nil, nil, fmt.Errorf(`"runtimes" is not a JSON object but %s`, jsonKind(v))
		}
		runtimes = obj
	}
	return conf, runtimes, nil
}

// jsonKind names the JSON type of a decoded value for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	default:
		return "an object"
	}
}

// encodeDaemonJSON writes conf the way Docker's documentation shows it:
// indented, keys sorted, a final newline, paths unescaped.
func encodeDaemonJSON(conf map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		return nil, fmt.Errorf("encode daemon configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// editDaemonJSON applies edit to the text of file (empty when it does not
// exist) and, when edit reports a change, replaces file atomically with the
// result, keeping its permissions (0644 for a new file). A lock on file's
// directory makes concurrent edits by tako take turns. Errors name file.
func editDaemonJSON(file string, edit func([]byte) ([]byte, bool, error)) (changed bool, err error) {
	// Write through a symlink to its target rather than replacing the link.
	if target, err := filepath.EvalSymlinks(file); err == nil {
		file = target
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return false, err
	}
	defer unlock()

	mode := fs.FileMode(0o644)
	doc, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		doc = nil
	case err != nil:
		return false, fmt.Errorf("read %s: %w", file, err)
	default:
		if fi, err := os.Stat(file); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	out, changed, err := edit(doc)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	if !changed {
		return false, nil
	}
	if err := writeFileAtomic(file, out, mode); err != nil {
		return false, err
	}
	return true, nil
}

// lockDir takes an exclusive flock on dir itself, so no lock file is left
// behind in Docker's configuration directory, and returns its release.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// writeFileAtomic replaces file with data through a temporary file in the
// same directory and a rename, so a reader sees the old or the new file,
// never a partial one.
func writeFileAtomic(file string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tako-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	// Make the rename itself durable; failing that is no reason to report
	// the write as failed.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// dockerdPID returns the pid of the running dockerd: the one in pidFile
// when that process is dockerd, else the only process under proc whose
// comm is dockerd. It never guesses between several.
func dockerdPID(pidFile, proc string) (int, error) {
	isDockerd := func(pid int) bool {
		comm, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
		return err == nil && strings.TrimSpace(string(comm)) == "dockerd"
	}
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && isDockerd(pid) {
			return pid, nil
		}
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, fmt.Errorf("find dockerd: %w", err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isDockerd(pid) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	switch len(pids) {
	case 0:
		return 0, fmt.Errorf("find dockerd: no dockerd process (%s names none, and none runs in %s)", pidFile, proc)
	case 1:
		return pids[0], nil
	default:
		return 0, fmt.Errorf("find dockerd: %s names none, and %d dockerd processes run (pids %v): send SIGHUP to the right one yourself", pidFile, len(pids), pids)
	}
}
