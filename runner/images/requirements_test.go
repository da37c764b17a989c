package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/egress"
	"github.com/tako-run/tako/runner/runnertest/pkgindex"
)

func TestNormalizeRequirements(t *testing.T) {
	t.Parallel()
	got := NormalizeRequirements([]string{" numpy ", "pandas>=2", "numpy", ""})
	if strings.Join(got, ",") != "numpy,pandas>=2" {
		t.Errorf("got %q", got)
	}
	a := requirementsRef("sha256:x", []string{"b", "a"}, jobtypes.PipIndex{}, false)
	if a != requirementsRef("sha256:x", []string{"a", "b", "a"}, jobtypes.PipIndex{}, false) {
		t.Error("the ref depends on order or duplicates")
	}
	if a == requirementsRef("sha256:y", []string{"a", "b"}, jobtypes.PipIndex{}, false) ||
		a == requirementsRef("sha256:x", []string{"a", "b"}, jobtypes.PipIndex{IndexURL: "http://i/simple"}, false) ||
		a == requirementsRef("sha256:x", []string{"a", "b"}, jobtypes.PipIndex{}, true) {
		t.Error("the ref ignores the base image, the index or source builds")
	}
}

// TestEnsureRequirements builds ad-hoc images from a local index: the
// package imports, a second request does not build, concurrent requests
// share one build, a package the index lacks fails with pip's message once,
// and collection keeps the cap without removing an image in use.
func TestEnsureRequirements(t *testing.T) {
	cli := dockerClient(t)
	testsync.LockImages(t)
	ctx := context.Background()
	var progress testsync.Buffer
	base, err := newTestBuilder(t, cli, jobtypes.PipIndex{}, nil).EnsureExecutor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	index := pkgindex.Start(t, cli, base)
	pip := jobtypes.PipIndex{IndexURL: "http://" + index + ":8080/simple", TrustedHosts: []string{index}}
	b := newTestBuilder(t, cli, pip, &progress)
	b.opts.Egress = testEgress(t, cli)
	set := func(reqs ...string) RequirementSet {
		return RequirementSet{JobType: jobtypes.JobType{Name: "default"}, Base: base, Requirements: reqs}
	}
	builds := func() int { return strings.Count(progress.String(), "==> building requirements image") }

	// Sets of this run only (all met by takotiny 0.1), so that images of
	// earlier runs are not found.
	n := time.Now().UnixNano() % 1_000_000
	one, other, missing := fmt.Sprintf("takotiny>=0.0.%d", n), fmt.Sprintf("takotiny>=0.0.%d,<1", n), fmt.Sprintf("tako-no-such-package-%d", n)
	ref, err := b.EnsureRequirements(ctx, set(one))
	if err != nil {
		t.Fatalf("EnsureRequirements: %v\n%s", err, progress.String())
	}
	removeImageAtEnd(t, cli, ref)
	if out, code := runPython(t, cli, ref, "import takotiny; print(takotiny.VALUE)"); code != 0 || strings.TrimSpace(out) != "42" {
		t.Fatalf("import takotiny: exit %d, %q", code, out)
	}
	before := builds()
	if again, err := b.EnsureRequirements(ctx, set(" "+one+" ")); err != nil || again != ref || builds() != before {
		t.Errorf("second request: %q %v, %d builds; want %q and no build", again, err, builds()-before, ref)
	}

	// Ten concurrent requests for a new set: one build.
	before = builds()
	var wg sync.WaitGroup
	refs := make([]string, 10)
	errs := make([]error, 10)
	for i := range 10 {
		wg.Go(func() { refs[i], errs[i] = b.EnsureRequirements(ctx, set(other)) })
	}
	wg.Wait()
	for i := range 10 {
		if errs[i] != nil || refs[i] != refs[0] {
			t.Fatalf("request %d: %q %v", i, refs[i], errs[i])
		}
	}
	removeImageAtEnd(t, cli, refs[0])
	if n := builds() - before; n != 1 {
		t.Errorf("10 concurrent requests made %d builds, want 1", n)
	}

	// A package the index lacks: pip's message, remembered.
	_, err = b.EnsureRequirements(ctx, set(missing))
	var be *BuildError
	if !errors.As(err, &be) || !strings.Contains(be.Msg, "No matching distribution found for "+missing) {
		t.Fatalf("missing package: %v", err)
	}
	before = builds()
	_, err2 := b.EnsureRequirements(ctx, set(missing))
	if !errors.As(err2, &be) || builds() != before {
		t.Errorf("the failure was not remembered: %v, %d builds", err2, builds()-before)
	}

	// Collection, over our two images only (other tests' images count as in
	// use): with both in use nothing goes even at a cap of 0; with the
	// first in use, only the second goes.
	ours := map[string]bool{ref: true, refs[0]: true}
	inUse := map[string]bool{ref: true, refs[0]: true}
	keep := func(r string) bool { return !ours[r] || inUse[r] }
	removed, err := b.CollectRequirements(ctx, 0, 0, keep)
	if err != nil || len(removed) != 0 {
		t.Errorf("removed %v (%v) while in use", removed, err)
	}
	delete(inUse, refs[0])
	removed, err = b.CollectRequirements(ctx, 0, 0, keep)
	if err != nil || strings.Join(removed, ",") != refs[0] {
		t.Errorf("removed %v (%v), want only %s", removed, err, refs[0])
	}
	if _, ok, _ := b.inspect(ctx, ref); !ok {
		t.Error("the image in use was removed")
	}
}

// testEgress starts an egress gateway for the test, owned by an instance
// whose lock the test holds (so that no reaper takes it for dead), and
// closes it at the end.
func testEgress(t *testing.T, cli *client.Client) *egress.Gateway {
	t.Helper()
	lock := filepath.Join(t.TempDir(), "instance.lock")
	f, err := os.Create(lock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := egress.Start(ctx, cli, egress.Options{Instance: uniqueName("egresstest")[len("egresstest-"):] + "00", LockPath: lock, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("egress gateway: %v", err)
	}
	t.Cleanup(g.Close)
	return g
}

// TestSourceBuilds serves takoevil, a source distribution whose setup.py
// tries to reach the index directly (past the proxy), a host port through
// the egress network's gateway and the outside world, and to write outside
// its build. Without source builds it is refused with a message that says
// so; with them its code runs, as the build uid and with no way out, and
// its own report proves both.
func TestSourceBuilds(t *testing.T) {
	cli := dockerClient(t)
	testsync.LockImages(t)
	ctx := context.Background()
	base, err := newTestBuilder(t, cli, jobtypes.PipIndex{}, nil).EnsureExecutor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gw := testEgress(t, cli)
	proxy, revoke := gw.Grant(egress.Grant{})
	revoke()
	gateway := strings.Split(strings.Split(proxy, "@")[1], ":")[0]
	ln, err := net.Listen("tcp", "0.0.0.0:0") // a host service on every address
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	// The index's own address is known only once it runs, so the probe
	// tries it through a second index with the same packages.
	first := pkgindex.Start(t, cli, base)
	index := pkgindex.StartWith(t, cli, base, pkgindex.Options{ProbeTargets: []pkgindex.Target{
		{Name: "index directly", Host: first, Port: 8080},
		{Name: "host port through the gateway", Host: gateway, Port: port},
		{Name: "docker0 host port", Host: "172.17.0.1", Port: port},
		{Name: "outside", Host: "1.1.1.1", Port: 53},
	}})
	pip := jobtypes.PipIndex{IndexURL: "http://" + index + ":8080/simple", TrustedHosts: []string{index}}

	var progress testsync.Buffer
	b := newTestBuilder(t, cli, pip, &progress)
	b.opts.Egress = gw
	jt := jobtypes.JobType{Name: "default"}
	// A set of this run's own: another test's takoevil image, built from
	// another index that may have had the same address, reports its own
	// probes, and the builder would find it.
	evil := fmt.Sprintf("takoevil>=0.0.%d", time.Now().UnixNano()%1_000_000)
	_, err = b.EnsureRequirements(ctx, RequirementSet{JobType: jt, Base: base, Requirements: []string{evil}})
	var be *BuildError
	if !errors.As(err, &be) || !strings.Contains(be.Msg, "source builds are off") {
		t.Fatalf("without source builds: %v, want a BuildError saying source builds are off", err)
	}

	jt.AllowSourceBuilds = true
	ref, err := b.EnsureRequirements(ctx, RequirementSet{JobType: jt, Base: base, Requirements: []string{evil}})
	if err != nil {
		t.Fatalf("with source builds: %v\n%s", err, progress.String())
	}
	removeImageAtEnd(t, cli, ref)
	out, code := runPython(t, cli, ref, "import takoevil; print(takoevil.PROBE)")
	var report map[string]any
	if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &report) != nil {
		t.Fatalf("import takoevil: exit %d, %q", code, out)
	}
	want := map[string]any{
		"phase": "build", "uid": float64(b.opts.BuildUID),
		"index directly": "refused", "host port through the gateway": "refused", "docker0 host port": "refused", "outside": "refused",
		"write /etc": "refused", "write /wheels": "refused",
	}
	for k, v := range want {
		if report[k] != v {
			t.Errorf("%s: %v, want %v (report %v)", k, report[k], v, report)
		}
	}
}
