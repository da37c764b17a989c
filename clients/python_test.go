// Package clients_test tests tako's clients in other languages against a
// real tako server: the Python client in clients/python.
package clients_test

import (
	"archive/zip"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/internal/takotest"
)

// installHint says how to get an interpreter that can build the wheel.
const installHint = "install Debian's python3-venv python3-pip python3-setuptools python3-wheel (make testdeps does, as root), " +
	"or set TAKO_TEST_PYTHON to a python3 that has pip, venv, setuptools >= 61 and wheel"

// probe checks, in the interpreter it runs in, what building and
// installing the wheel offline needs.
const probe = `import importlib.util, sys
try:
    import setuptools  # first: Debian's distutils shim breaks it once pip is looked up
except ImportError:
    sys.exit("missing setuptools")
missing = [m for m in ("wheel", "venv", "ensurepip", "pip") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("missing " + ", ".join(missing))
if int(setuptools.__version__.split(".")[0]) < 61 or sys.version_info < (3, 9):
    sys.exit("setuptools " + setuptools.__version__ + " is older than 61, or python older than 3.9")`

// TestPythonClient builds the Python client's wheel offline, installs it
// into a fresh virtual environment with no index, and runs the client's
// unittest suite from that installation against a real tako.
func TestPythonClient(t *testing.T) {
	root := takotest.ModuleRoot(t)
	python := buildPython(t)
	work := t.TempDir()

	// Build from a copy: a build leaves build/ and *.egg-info behind.
	src := filepath.Join(work, "src")
	copyTree(t, filepath.Join(root, "clients", "python"), src)
	wheels := filepath.Join(work, "wheels")
	run(t, work, 3*time.Minute, python, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps", "-w", wheels, src)
	wheel := onlyWheel(t, wheels)
	checkWheel(t, wheel)

	venv := filepath.Join(work, "venv")
	run(t, work, 3*time.Minute, python, "-m", "venv", venv)
	vpy := filepath.Join(venv, "bin", "python")
	run(t, work, 3*time.Minute, vpy, "-m", "pip", "install", "--no-index", wheel)
	// From work, not from the source: the import must find the installed
	// package.
	where := run(t, work, time.Minute, vpy, "-c", "import tako_client, typing; print(tako_client.__file__)")
	if !strings.HasPrefix(strings.TrimSpace(where), venv) {
		t.Fatalf("tako_client imported from %s, not from the virtual environment %s", where, venv)
	}

	srv := takotest.Start(t)
	tests := filepath.Join(root, "clients", "python", "tests")
	start := time.Now()
	out := runEnv(t, work, 6*time.Minute, []string{"TAKO_URL=" + srv.URL, "TAKO_API_KEY=" + srv.APIKey},
		vpy, "-m", "unittest", "discover", "-v", "-s", tests, "-t", tests)
	t.Logf("python suite: %s in %s", lastLine(out, "Ran "), time.Since(start).Round(time.Second))
}

// buildPython returns a python3 that can build and install the wheel
// offline: TAKO_TEST_PYTHON, Debian's /usr/bin/python3 (which make testdeps
// provides with setuptools and wheel), or python3 on PATH. None is a
// failure, never a skip.
func buildPython(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("TAKO_TEST_PYTHON"); p != "" {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3", "python3")
	var tried []string
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, c+": not found")
			continue
		}
		cmd := exec.Command(p, "-c", probe)
		if out, err := cmd.CombinedOutput(); err != nil {
			tried = append(tried, p+": "+strings.TrimSpace(lastLine(string(out), ""))+" "+err.Error())
			continue
		}
		return p
	}
	t.Fatalf("no python3 can build the client's wheel offline (%s): %s", strings.Join(tried, "; "), installHint)
	return ""
}

// run runs name with args in dir and returns its combined output; a
// failure or a run past timeout fails the test with the output.
func run(t *testing.T, dir string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	return runEnv(t, dir, timeout, nil, name, args...)
}

// runEnv is run with env added to the environment. pip never reaches an
// index, nor reads the user's configuration.
func runEnv(t *testing.T, dir string, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PIP_NO_INDEX=1", "PIP_CONFIG_FILE=/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no end in %s:\n%s", name, strings.Join(args, " "), timeout, out)
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyTree copies the regular files under from to to, without Python's
// caches and earlier build output.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	skip := []string{"__pycache__", "build", "dist", ".mypy_cache"}
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			if slices.Contains(skip, d.Name()) || strings.HasSuffix(d.Name(), ".egg-info") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

// onlyWheel returns the one wheel in dir.
func onlyWheel(t *testing.T, dir string) string {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(dir, "tako_client-*.whl"))
	if len(found) != 1 {
		t.Fatalf("want one tako_client wheel in %s, found %v", dir, found)
	}
	return found[0]
}

// checkWheel checks that the wheel is pure Python and ships the package
// with its py.typed marker and no tests.
func checkWheel(t *testing.T, path string) {
	t.Helper()
	if !regexp.MustCompile(`-py3-none-any\.whl$`).MatchString(path) {
		t.Errorf("wheel %s is not pure Python (py3-none-any)", filepath.Base(path))
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("open wheel: %v", err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	for _, want := range []string{"tako_client/__init__.py", "tako_client/client.py", "tako_client/compat.py", "tako_client/py.typed"} {
		if !slices.Contains(names, want) {
			t.Errorf("wheel lacks %s: %v", want, names)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "tests/") {
			t.Errorf("wheel ships the tests: %s", n)
		}
	}
}

// lastLine returns the last line of out that starts with prefix.
func lastLine(out, prefix string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}
