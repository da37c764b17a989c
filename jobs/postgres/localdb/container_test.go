package localdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/runner/images"
	"github.com/tako-run/tako/runner/runnertest"
)

// The real client is what production passes in.
var _ DockerAPI = (*client.Client)(nil)

// postgresImage returns tako's PostgreSQL image, building it the way `tako
// setup` does on a host without a registry. Test processes take turns
// through runnertest's lock file, so it is built once.
func postgresImage(t *testing.T, dc *client.Client) string {
	t.Helper()
	runnertest.ExecutorImage(t, dc)
	path := filepath.Join(os.TempDir(), "tako-test-images.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	b := images.NewBuilder(dc, images.Options{WorkDir: t.TempDir()}, testLogger(t), nil)
	ref, err := EnsureImage(ctx, b, "") // "": build, do not ask a registry
	if err != nil {
		t.Fatalf("postgres image: %v", err)
	}
	return ref
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testOptions returns options with a container and volume name of its own
// and a free port, and removes both at the end of the test.
func testOptions(t *testing.T, dc *client.Client, image string) Options {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "tako-test-pg-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dc.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove container %s: %v", name, err)
		}
		if err := dc.VolumeRemove(ctx, name+"-data", true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove volume %s: %v", name+"-data", err)
		}
		if err := dc.NetworkRemove(ctx, name+"-net"); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove network %s: %v", name+"-net", err)
		}
	})
	return Options{Name: name, Image: image, Port: freePort(t), Volume: name + "-data", Network: name + "-net",
		Password: hex.EncodeToString(b) + "-secret", LockFile: filepath.Join(t.TempDir(), name+".lock")}
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func connect(t *testing.T, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect %s: %v", dbURL, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestEnsure(t *testing.T) {
	dc := runnertest.Docker(t)
	image := postgresImage(t, dc)
	t.Run("lifecycle", func(t *testing.T) {
		t.Parallel()
		testLifecycle(t, dc, image)
	})
	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		testConcurrent(t, dc, image)
	})
	t.Run("port busy", func(t *testing.T) {
		t.Parallel()
		testPortBusy(t, dc, image)
	})
	t.Run("legacy container", func(t *testing.T) {
		t.Parallel()
		testLegacy(t, dc, image)
	})
}

// testLegacy starts from a container as the original made it, on the
// default bridge with the well-known password: Ensure moves it to a
// network of its own and to the new password, and keeps the data.
func testLegacy(t *testing.T, dc *client.Client, image string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts := testOptions(t, dc, image)
	legacy := opts
	legacy.Network, legacy.Password = "bridge", LegacyPassword
	oldURL, err := Ensure(ctx, dc, legacy, testLogger(t))
	if err != nil {
		t.Fatalf("Ensure as the original: %v", err)
	}
	conn := connect(t, ctx, oldURL)
	if _, err := conn.Exec(ctx, "create table notes (body text); insert into notes values ('kept')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	newURL, err := Ensure(ctx, dc, opts, testLogger(t))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	info, err := dc.ContainerInspect(ctx, opts.Name)
	if err != nil || !alone(info, opts.Network) {
		t.Fatalf("container on %v (%v), want %s alone", info.NetworkSettings.Networks, err, opts.Network)
	}
	var body string
	if err := connect(t, ctx, newURL).QueryRow(ctx, "select body from notes").Scan(&body); err != nil || body != "kept" {
		t.Errorf("data after the move = %q, %v", body, err)
	}
	if c, err := pgx.Connect(ctx, oldURL); err == nil {
		c.Close(ctx)
		t.Error("the well-known password still works")
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "database", "tako-postgres.password")
	first, err := Password(file)
	if err != nil || len(first) < 32 {
		t.Fatalf("Password = %q, %v", first, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if again, err := Password(file); err != nil || again != first {
		t.Errorf("second Password = %q, %v; want the first %q", again, err, first)
	}
	other, _ := Password(filepath.Join(t.TempDir(), "p"))
	if other == first {
		t.Error("two files, one password")
	}
}

// testLifecycle creates the container, reuses it, restarts it after a
// stop and finds its data kept, and reports a wrong password clearly.
func testLifecycle(t *testing.T, dc *client.Client, image string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts := testOptions(t, dc, image)
	logger := testLogger(t)

	start := time.Now()
	dbURL, err := Ensure(ctx, dc, opts, logger)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	t.Logf("first Ensure (create, initdb, start) took %s", time.Since(start))
	want := "postgres://postgres:" + opts.Password + "@127.0.0.1:" + strconv.Itoa(opts.Port) + "/tako?sslmode=disable"
	if dbURL != want {
		t.Errorf("url = %q, want %q", dbURL, want)
	}
	conn := connect(t, ctx, dbURL)
	if _, err := conn.Exec(ctx, "create table notes (body text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "insert into notes values ('kept')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	info, err := dc.ContainerInspect(ctx, opts.Name)
	if err != nil {
		t.Fatal(err)
	}
	if l := info.Config.Labels; l["tako.managed"] != "true" || l["tako.kind"] != "database" {
		t.Errorf("container labels = %v", l)
	}
	if b := info.HostConfig.PortBindings[pgPort]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != strconv.Itoa(opts.Port) {
		t.Errorf("port bindings = %v, want only 127.0.0.1:%d", b, opts.Port)
	}
	if !alone(info, opts.Network) {
		t.Errorf("networks = %v, want %s alone", info.NetworkSettings.Networks, opts.Network)
	}
	if p := info.HostConfig.RestartPolicy.Name; p != container.RestartPolicyUnlessStopped {
		t.Errorf("restart policy = %q", p)
	}
	if len(info.Mounts) != 1 || info.Mounts[0].Name != opts.Volume || info.Mounts[0].Destination != dataDir {
		t.Errorf("mounts = %+v, want volume %s at %s", info.Mounts, opts.Volume, dataDir)
	}
	vol, err := dc.VolumeInspect(ctx, opts.Volume)
	if err != nil {
		t.Fatal(err)
	}
	if vol.Labels["tako.managed"] != "true" {
		t.Errorf("volume labels = %v", vol.Labels)
	}

	start = time.Now()
	again, err := Ensure(ctx, dc, opts, logger)
	if err != nil || again != dbURL {
		t.Fatalf("second Ensure = %q, %v", again, err)
	}
	t.Logf("second Ensure (running) took %s", time.Since(start))
	if info2, err := dc.ContainerInspect(ctx, opts.Name); err != nil || info2.ID != info.ID {
		t.Fatalf("second Ensure: container %s (%v), want the same container %s", info2.ID, err, info.ID)
	}

	// Another image or port in the configuration does not replace the
	// container: it is reused, with a warning, on the port it publishes.
	var logs bytes.Buffer
	other := opts
	other.Image, other.Port = "tako-test/other-postgres:none", freePort(t)
	if again, err := Ensure(ctx, dc, other, slog.New(slog.NewTextHandler(&logs, nil))); err != nil || again != dbURL {
		t.Fatalf("Ensure with another image and port = %q, %v; want %q", again, err, dbURL)
	}
	for _, want := range []string{"database container runs another image", "database container publishes another port"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}

	if err := dc.ContainerStop(ctx, opts.Name, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if again, err = Ensure(ctx, dc, opts, logger); err != nil || again != dbURL {
		t.Fatalf("Ensure after stop = %q, %v", again, err)
	}
	t.Logf("Ensure after stop (start) took %s", time.Since(start))
	info3, err := dc.ContainerInspect(ctx, opts.Name)
	if err != nil || info3.ID != info.ID || !info3.State.Running {
		t.Fatalf("after stop: container %s running=%v (%v), want %s running", info3.ID, info3.State != nil && info3.State.Running, err, info.ID)
	}
	var body string
	if err := connect(t, ctx, dbURL).QueryRow(ctx, "select body from notes").Scan(&body); err != nil || body != "kept" {
		t.Fatalf("row after restart = %q, %v; want \"kept\"", body, err)
	}

	// The volume keeps the password it was initialised with.
	wrong := opts
	wrong.Password = "not-the-password"
	start = time.Now()
	_, err = Ensure(ctx, dc, wrong, logger)
	if err == nil || !strings.HasPrefix(err.Error(), "the "+opts.Name+" container rejects tako's credentials (") {
		t.Fatalf("Ensure with a wrong password = %v", err)
	}
	// Refused at the first answer, not after waiting out the start window.
	if took := time.Since(start); took >= DefaultTimeout {
		t.Errorf("a wrong password took %s to report, the whole start window", took)
	}
}

// testConcurrent has two callers race to create the same container.
func testConcurrent(t *testing.T, dc *client.Client, image string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts := testOptions(t, dc, image)
	opts.Password = "p@ss:/word?#"
	opts.Database = "race"
	var wg sync.WaitGroup
	urls := make([]string, 2)
	errs := make([]error, 2)
	for i := range urls {
		wg.Go(func() { urls[i], errs[i] = Ensure(ctx, dc, opts, testLogger(t)) })
	}
	wg.Wait()
	for i := range urls {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v", i, errs[i])
		}
	}
	if urls[0] != urls[1] {
		t.Fatalf("urls differ: %q and %q", urls[0], urls[1])
	}
	var db string
	if err := connect(t, ctx, urls[0]).QueryRow(ctx, "select current_database()").Scan(&db); err != nil || db != "race" {
		t.Fatalf("current_database() = %q, %v", db, err)
	}
}

// testPortBusy asks for a port something else holds: Ensure fails with a
// sentence naming the port and removes the container it could not start.
func testPortBusy(t *testing.T, dc *client.Client, image string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := testOptions(t, dc, image)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opts.Port = l.Addr().(*net.TCPAddr).Port
	_, err = Ensure(ctx, dc, opts, testLogger(t))
	want := "start the " + opts.Name + " container on 127.0.0.1:" + strconv.Itoa(opts.Port) + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Ensure on a busy port = %v, want an error starting %q", err, want)
	}
	t.Logf("error: %v", err)
	if _, err := dc.ContainerInspect(ctx, opts.Name); !cerrdefs.IsNotFound(err) {
		t.Errorf("container left behind after a failed start (inspect: %v)", err)
	}
}
