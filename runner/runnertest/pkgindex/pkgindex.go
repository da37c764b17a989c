// Package pkgindex serves tests a pip package index with one real wheel,
// takotiny 0.1 (import takotiny; takotiny.VALUE == 42), from a container on
// Docker's default bridge, where image builds can reach it.
package pkgindex

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Target is a host and port that the probe package tries to connect to.
type Target struct {
	Name string // what the probe's report calls it
	Host string // an address; Gateway means the gateway of the build's own network
	Port int
}

// Gateway, as a Target's Host, stands for the gateway address of the
// network the build runs on: the host, as a container sees it.
const Gateway = "GATEWAY"

// Options add packages to the index.
type Options struct {
	// ProbeTargets, when set, adds takoevil 0.1, a source distribution
	// (no wheel) whose setup.py, run as pip prepares and builds it, tries
	// to connect to each target and to write outside its build: to /etc
	// and to the download directory /wheels. It fails the build with
	// "TAKO-PROBE escaped: <report>" when it ran as root or a connection
	// opened; otherwise its build writes the report of the build phase
	// into takoevil.PROBE, JSON.
	ProbeTargets []Target
}

// Start serves a pip "simple" index holding one tiny wheel,
// takotiny 0.1, from a container of the executor image on the default
// bridge (build containers cannot reach the host's loopback). It returns
// the container's IP address.
func Start(t testing.TB, cli *client.Client, executor string) string {
	return StartWith(t, cli, executor, Options{})
}

// StartWith is Start with the packages opts adds.
func StartWith(t testing.TB, cli *client.Client, executor string, opts Options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:  executor,
		Cmd:    []string{"python3", "-m", "http.server", "8080", "--directory", "/tmp/index"},
		User:   "1000:1000",
		Labels: map[string]string{"tako.managed": "true", "tako.test": "images"},
	}, &container.HostConfig{CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"}}, nil, nil, "")
	if err != nil {
		t.Fatalf("create index container: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	wheel := tinyWheel(t)
	files := map[string][]byte{
		"index/simple/index.html":                             []byte(`<html><body><a href="takotiny/">takotiny</a><a href="takoevil/">takoevil</a></body></html>`),
		"index/simple/takotiny/index.html":                    []byte(`<html><body><a href="takotiny-0.1-py3-none-any.whl">takotiny-0.1-py3-none-any.whl</a></body></html>`),
		"index/simple/takotiny/takotiny-0.1-py3-none-any.whl": wheel,
	}
	if len(opts.ProbeTargets) > 0 {
		files["index/simple/takoevil/index.html"] = []byte(`<html><body><a href="takoevil-0.1.tar.gz">takoevil-0.1.tar.gz</a></body></html>`)
		files["index/simple/takoevil/takoevil-0.1.tar.gz"] = evilSdist(t, opts.ProbeTargets)
	}
	if err := cli.CopyToContainer(ctx, created.ID, "/tmp", tarOf(t, files), container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copy index: %v", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start index: %v", err)
	}
	// Ready once http.server says it serves (the image is unbuffered).
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		t.Fatalf("index logs: %v", err)
	}
	defer logs.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, logs)
		pw.CloseWithError(err)
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() && !strings.Contains(sc.Text(), "Serving HTTP") {
	}
	if sc.Err() != nil || ctx.Err() != nil {
		t.Fatalf("index did not start: %v %v", sc.Err(), ctx.Err())
	}
	logs.Close()
	info, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatalf("inspect index: %v", err)
	}
	ip := info.NetworkSettings.IPAddress
	for _, n := range info.NetworkSettings.Networks {
		if ip == "" {
			ip = n.IPAddress
		}
	}
	if ip == "" {
		t.Fatal("index container has no IP address")
	}
	return ip
}

// tinyWheel returns takotiny-0.1-py3-none-any.whl: a package whose
// __init__ sets VALUE = 42.
func tinyWheel(t testing.TB) []byte {
	t.Helper()
	files := []struct{ name, body string }{
		{"takotiny/__init__.py", "VALUE = 42\n"},
		{"takotiny-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: takotiny\nVersion: 0.1\nSummary: tako test package\n"},
		{"takotiny-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: tako-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, f.body); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	record.WriteString("takotiny-0.1.dist-info/RECORD,,\n")
	w, err := zw.Create("takotiny-0.1.dist-info/RECORD")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, record.String()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarOf returns a tar stream of files (path -> content), world-readable,
// with the directories they need.
func tarOf(t testing.TB, files map[string][]byte) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, name := range names {
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			dir := strings.Join(parts[:i], "/") + "/"
			if !dirs[dir] {
				dirs[dir] = true
				if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
		}
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// evilSetup is takoevil's setup.py; %s is the JSON list of targets.
const evilSetup = `import json, os, socket, sys
from setuptools import setup
TARGETS = json.loads(%s)
phase = 'build' if 'bdist_wheel' in sys.argv else 'metadata'
report = {'phase': phase, 'uid': os.getuid()}
def gateway():
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return None
    return None if ip.startswith('127.') else ip.rsplit('.', 1)[0] + '.1'
for name, host, port in TARGETS:
    if host == 'GATEWAY':
        host = gateway()
        if host is None:
            report[name] = 'refused'  # no network at all
            continue
    try:
        socket.create_connection((host, port), timeout=3).close()
        report[name] = 'open'
    except OSError:
        report[name] = 'refused'
for path in ('/etc/takoevil', '/wheels/takoevil-' + phase):
    try:
        open(path, 'w').close()
        report['write ' + os.path.dirname(path)] = 'wrote'
    except OSError:
        report['write ' + os.path.dirname(path)] = 'refused'
if report['uid'] == 0 or 'open' in report.values():
    sys.exit('TAKO-PROBE escaped: ' + json.dumps(report, sort_keys=True))
if phase == 'build':
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, 'takoevil', 'probe.py'), 'w') as f:
        f.write('PROBE = %%r\n' %% json.dumps(report, sort_keys=True))
setup(name='takoevil', version='0.1', packages=['takoevil'])
`

// evilSdist returns takoevil-0.1.tar.gz.
func evilSdist(t testing.TB, targets []Target) []byte {
	t.Helper()
	list := make([][]any, len(targets))
	for i, tg := range targets {
		list[i] = []any{tg.Name, tg.Host, tg.Port}
	}
	js, _ := json.Marshal(list)
	lit, _ := json.Marshal(string(js))
	files := map[string][]byte{
		"takoevil-0.1/setup.py":             []byte(fmt.Sprintf(evilSetup, lit)),
		"takoevil-0.1/PKG-INFO":             []byte("Metadata-Version: 2.1\nName: takoevil\nVersion: 0.1\n"),
		"takoevil-0.1/takoevil/__init__.py": []byte("try:\n    from .probe import PROBE\nexcept ImportError:\n    PROBE = None\n"),
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.Copy(zw, tarOf(t, files)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
