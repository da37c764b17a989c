package runnertest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/tako-run/tako/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Where second engines live. The data root is on the host's disk, which
// fuse-overlayfs and overlay2 both accept (a test's temporary directory may
// be on tmpfs or overlay); the exec root is short, because unix socket
// paths under it must stay below 108 bytes.
const (
	engineBase    = "/var/lib/tako-test-engines"
	engineRunBase = "/run/tako-test-engines"
)

// Second engines take their addresses from 10.n.0.0/16 for n in this
// range: the default bridge has 10.n.0.0/24, the networks created on the
// engine the /24s after it. The main engine's pools (172.17.0.0/16 and up,
// 192.168.0.0/16) stay out of the way.
const (
	engineSlotFirst = 100
	engineSlotLast  = 249
)

const (
	engineStartTimeout = 60 * time.Second
	engineStopTimeout  = 30 * time.Second
	engineCopyTimeout  = 5 * time.Minute
)

// Runtimes every engine has under these names: they cannot be registered
// again.
var builtinRuntimes = map[string]bool{
	"runc":                           true,
	"io.containerd.runc.v2":          true,
	"io.containerd.runtime.v1.linux": true,
}

// Engine is a Docker engine a test started for itself, beside the main one,
// to stand in for a second host. It has its own socket, data and exec roots,
// managed containerd, engine ID and bridge, the main engine's storage driver
// and OCI runtimes (gVisor among them), and no iptables rules: it leaves the
// host's firewall, which the main engine owns, alone. Its containers reach
// the host through their bridge's gateway address, as tako's egress proxy
// needs, but nothing beyond it: nothing masquerades or forwards for them.
type Engine struct {
	// Host is the engine's address as DOCKER_HOST takes it:
	// "unix://" and the path of its socket.
	Host string
	// Client talks to the engine; it is closed when the test ends.
	Client *client.Client
	// Bridge is the name of the engine's default bridge interface.
	Bridge string
	// Subnet is the /16 the engine's networks take their addresses from:
	// its default bridge has the first /24.
	Subnet netip.Prefix
	// DataRoot and ExecRoot are the engine's --data-root and --exec-root.
	DataRoot, ExecRoot string
	// Log is the path of dockerd's log, in the test's temporary directory.
	Log string

	slot engineSlot
	lock *os.File      // held while the slot is in use
	cmd  *exec.Cmd     // dockerd
	done chan struct{} // closed when dockerd has exited
}

// SecondEngine starts a Docker engine of its own for the test and copies
// images, named as the main engine knows them, into it with their tags. The
// engine, its containers, mounts, network interfaces and directories are
// gone when the test ends; what a killed test process left behind is
// removed by the next call. It needs root and dockerd on PATH: without them
// the test fails in CI (CI non-empty) and is skipped elsewhere. Any other
// failure fails the test, with dockerd's log. It is safe to call from
// parallel tests and test processes.
func SecondEngine(t testing.TB, images ...string) *Engine {
	t.Helper()
	dockerd, err := exec.LookPath("dockerd")
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("a second Docker engine needs root")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("second Docker engine required in CI: %v", err)
		}
		t.Skipf("no second Docker engine: %v", err)
	}
	main := Docker(t)
	logDir := t.TempDir() // before the engine's cleanup, so the log outlives it

	ctx, cancel := context.WithTimeout(context.Background(), engineStartTimeout)
	defer cancel()
	info, err := main.Info(ctx)
	if err != nil {
		t.Fatalf("second engine: main engine info: %v", err)
	}
	reapStaleEngines(t)
	slot, lock, err := claimEngineSlot()
	if err != nil {
		t.Fatalf("second engine: %v", err)
	}
	e := &Engine{
		Host:     "unix://" + filepath.Join(slot.dir(), "docker.sock"),
		Bridge:   slot.bridge(),
		Subnet:   slot.subnet(),
		DataRoot: filepath.Join(slot.dir(), "root"),
		ExecRoot: slot.execRoot(),
		Log:      filepath.Join(logDir, "dockerd.log"),
		slot:     slot,
		lock:     lock,
	}
	t.Cleanup(func() {
		if err := e.close(); err != nil {
			t.Errorf("second engine: clean up: %v", err)
		}
		if t.Failed() {
			e.logTail(t, 200)
		}
	})

	begin := time.Now()
	if err := e.start(ctx, dockerd, info.Driver, info.Runtimes, info.DefaultRuntime); err != nil {
		e.logTail(t, 0)
		t.Fatalf("second engine: %v", err)
	}
	t.Logf("second engine %s started in %s (storage driver %s, bridge %s, %s)",
		e.Host, time.Since(begin).Round(time.Millisecond), info.Driver, e.Bridge, e.Subnet)

	if len(images) > 0 {
		begin = time.Now()
		copyCtx, cancel := context.WithTimeout(context.Background(), engineCopyTimeout)
		defer cancel()
		if err := copyImages(copyCtx, main, e.Client, images); err != nil {
			t.Fatalf("second engine: %v", err)
		}
		t.Logf("second engine: copied %s in %s", strings.Join(images, ", "), time.Since(begin).Round(time.Millisecond))
	}
	return e
}

// Env returns the DOCKER_HOST setting that points a subprocess at the
// engine, for exec.Cmd.Env.
func (e *Engine) Env() string { return "DOCKER_HOST=" + e.Host }

// start creates the engine's bridge, writes its configuration, starts
// dockerd and waits until it answers.
func (e *Engine) start(ctx context.Context, dockerd, driver string, runtimes map[string]system.RuntimeWithStatus, defaultRuntime string) error {
	for _, dir := range []string{e.slot.dir(), e.ExecRoot} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if err := createBridge(e.Bridge, e.slot.bridgeAddr()); err != nil {
		return err
	}
	configFile := filepath.Join(e.slot.dir(), "daemon.json")
	if err := writeEngineConfig(configFile, e.slot.dir(), driver, runtimes, defaultRuntime); err != nil {
		return err
	}
	logFile, err := os.Create(e.Log)
	if err != nil {
		return fmt.Errorf("create dockerd log: %w", err)
	}
	defer logFile.Close() // dockerd has its own descriptor

	// Without its own --config-file dockerd would read the main engine's
	// /etc/docker/daemon.json. --iptables=false: dockerd starting with
	// iptables rebuilds the DOCKER chains from scratch, dropping the main
	// engine's rules. Job containers run with network none and reach tako's
	// egress proxy on their network's gateway address, on the host, which
	// needs no forwarding.
	e.cmd = exec.Command(dockerd,
		"--config-file", configFile,
		"--host", e.Host,
		"--data-root", e.DataRoot,
		"--exec-root", e.ExecRoot,
		"--pidfile", filepath.Join(e.slot.dir(), "docker.pid"),
		"--bridge", e.Bridge,
		"--default-address-pool", "base="+e.Subnet.String()+",size=24",
		"--iptables=false", "--ip-masq=false", "--ip-forward=false",
	)
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	// Its own process group keeps a ^C meant for the test from reaching it
	// first; Pdeathsig stops it when the test process dies without cleaning
	// up, and the next SecondEngine removes the rest.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	e.done = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		defer close(e.done)
		// Pdeathsig fires when the thread that started the child exits,
		// not the process: keep this thread for dockerd's lifetime.
		runtime.LockOSThread()
		if err := e.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = e.cmd.Wait() // its exit is reported through done
	}()
	if err := <-started; err != nil {
		e.cmd = nil
		return fmt.Errorf("start dockerd: %w", err)
	}

	e.Client, err = client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	return e.waitReady(ctx)
}

// waitReady waits until dockerd answers a ping, exits, or ctx ends.
func (e *Engine) waitReady(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := e.Client.Ping(pingCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-e.done:
			return fmt.Errorf("dockerd exited before it answered: %v", e.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("dockerd did not answer within %s: %w", engineStartTimeout, err)
		case <-tick.C:
		}
	}
}

// logTail writes the last lines of dockerd's log to the test log; all of it
// when lines is 0.
func (e *Engine) logTail(t testing.TB, lines int) {
	t.Helper()
	data, err := os.ReadFile(e.Log)
	if err != nil {
		t.Logf("second engine: dockerd log: %v", err)
		return
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if lines > 0 && len(all) > lines {
		all = all[len(all)-lines:]
	}
	t.Logf("second engine: dockerd log (%s):\n%s", e.Log, strings.Join(all, "\n"))
}

// close removes the engine's containers, stops dockerd and removes
// everything the engine left on the host, then gives up its slot.
func (e *Engine) close() error {
	var errs []error
	if e.Client != nil {
		if e.cmd != nil && !exited(e.done) {
			errs = append(errs, removeAllContainers(e.Client))
		}
		e.Client.Close()
	}
	if e.cmd != nil {
		errs = append(errs, stopProcess(e.cmd.Process, e.done))
	}
	errs = append(errs, teardownSlot(e.slot))
	releaseSlot(e.slot, e.lock)
	return errors.Join(errs...)
}

// exited reports whether done is closed.
func exited(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// removeAllContainers force-removes every container of an engine, with
// its anonymous volumes.
func removeAllContainers(dc *client.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), engineStopTimeout)
	defer cancel()
	list, err := dc.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range list {
		if err := dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}
	return errors.Join(errs...)
}

// stopProcess sends dockerd SIGTERM, which stops its containers and
// containerd, and SIGKILL when it has not exited in time.
func stopProcess(p *os.Process, done <-chan struct{}) error {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(engineStopTimeout):
	}
	_ = p.Kill()
	select {
	case <-done:
		return fmt.Errorf("dockerd did not stop within %s of SIGTERM: killed", engineStopTimeout)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("dockerd (pid %d) survived SIGKILL", p.Pid)
	}
}

// copyImages copies images, with their tags, from one engine to another as
// docker save | docker load would.
func copyImages(ctx context.Context, from, to *client.Client, images []string) error {
	saved, err := from.ImageSave(ctx, images)
	if err != nil {
		return fmt.Errorf("save %s: %w", strings.Join(images, ", "), err)
	}
	defer saved.Close()
	resp, err := to.ImageLoad(ctx, saved, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load %s: %w", strings.Join(images, ", "), err)
	}
	defer resp.Body.Close()
	// The load reports its errors in the stream, after a 200.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg jsonmessage.JSONMessage
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("load %s: read response: %w", strings.Join(images, ", "), err)
		}
		if msg.Error != nil {
			return fmt.Errorf("load %s: %w", strings.Join(images, ", "), msg.Error)
		}
	}
	for _, ref := range images {
		if _, err := to.ImageInspect(ctx, ref); err != nil {
			return fmt.Errorf("image %s not there after the load: %w", ref, err)
		}
	}
	return nil
}

// runtimeConfig is a runtime as daemon.json registers it.
type runtimeConfig struct {
	Path string   `json:"path"`
	Args []string `json:"runtimeArgs,omitempty"`
}

// writeEngineConfig writes the engine's daemon.json: the main engine's
// storage driver and runtimes, with their arguments (gVisor's runsc needs
// --host-fifo=open for tako, which --add-runtime cannot pass), and a key
// file of its own so the engine has an ID of its own.
func writeEngineConfig(path, dir, driver string, runtimes map[string]system.RuntimeWithStatus, defaultRuntime string) error {
	cfg := map[string]any{
		"storage-driver":      driver,
		"deprecated-key-path": filepath.Join(dir, "key.json"),
	}
	own := map[string]runtimeConfig{}
	for name, r := range runtimes {
		if builtinRuntimes[name] || r.Path == "" {
			continue
		}
		own[name] = runtimeConfig{Path: r.Path, Args: r.Args}
	}
	if len(own) > 0 {
		cfg["runtimes"] = own
	}
	if _, ok := own[defaultRuntime]; ok {
		cfg["default-runtime"] = defaultRuntime
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("daemon.json: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write daemon.json: %w", err)
	}
	return nil
}

// engineSlot is a second engine's share of the host: n names its
// directories and bridge and picks its subnet, 10.n.0.0/16. The holder of
// the slot's lock file owns all of it.
type engineSlot struct{ n int }

func (s engineSlot) dir() string      { return filepath.Join(engineBase, strconv.Itoa(s.n)) }
func (s engineSlot) execRoot() string { return filepath.Join(engineRunBase, strconv.Itoa(s.n)) }
func (s engineSlot) lockPath() string { return filepath.Join(engineBase, strconv.Itoa(s.n)+".lock") }
func (s engineSlot) bridge() string   { return "takobr" + strconv.Itoa(s.n) }

func (s engineSlot) subnet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(s.n), 0, 0}), 16)
}

// bridgeAddr is the default bridge's address, with its /24.
func (s engineSlot) bridgeAddr() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(s.n), 0, 1}), 24)
}

// lockSlot takes slot n's lock file without waiting. It reports false when
// another holder has it.
func lockSlot(s engineSlot) (*os.File, bool, error) {
	f, err := os.OpenFile(s.lockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", s.lockPath(), err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", s.lockPath(), err)
	}
	// A holder that released the slot removed the file before unlocking
	// it: a lock on the removed file is worth nothing.
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(s.lockPath(), &now) != nil || held.Ino != now.Ino {
		f.Close()
		return nil, false, nil
	}
	return f, true, nil
}

// releaseSlot removes the slot's lock file, then lets go of it.
func releaseSlot(s engineSlot, lock *os.File) {
	os.Remove(s.lockPath())
	lock.Close()
}

// claimEngineSlot takes a free slot whose subnet no route or interface
// address on the host overlaps, and clears what an earlier holder left.
func claimEngineSlot() (engineSlot, *os.File, error) {
	if err := os.MkdirAll(engineBase, 0o755); err != nil {
		return engineSlot{}, nil, fmt.Errorf("create %s: %w", engineBase, err)
	}
	taken, err := hostPrefixes()
	if err != nil {
		return engineSlot{}, nil, err
	}
	ns := rand.Perm(engineSlotLast - engineSlotFirst + 1)
next:
	for _, i := range ns {
		s := engineSlot{n: engineSlotFirst + i}
		for _, p := range taken {
			if p.Overlaps(s.subnet()) {
				continue next
			}
		}
		lock, ok, err := lockSlot(s)
		if err != nil {
			return engineSlot{}, nil, err
		}
		if !ok {
			continue
		}
		if err := teardownSlot(s); err != nil {
			releaseSlot(s, lock)
			return engineSlot{}, nil, fmt.Errorf("clear slot %d: %w", s.n, err)
		}
		return s, lock, nil
	}
	return engineSlot{}, nil, fmt.Errorf("no free subnet in 10.%d.0.0-10.%d.0.0/16", engineSlotFirst, engineSlotLast)
}

// reapStaleEngines removes what engines of test processes that are gone
// left behind: their slots' locks are free.
func reapStaleEngines(t testing.TB) {
	t.Helper()
	seen := map[int]bool{}
	for _, base := range []string{engineBase, engineRunBase} {
		entries, _ := os.ReadDir(base)
		for _, ent := range entries {
			n, err := strconv.Atoi(strings.TrimSuffix(ent.Name(), ".lock"))
			if err != nil || n < engineSlotFirst || n > engineSlotLast || seen[n] {
				continue
			}
			seen[n] = true
			s := engineSlot{n: n}
			lock, ok, err := lockSlot(s)
			if err != nil || !ok {
				continue
			}
			if err := teardownSlot(s); err != nil {
				t.Logf("second engine: remove the leftovers of slot %d: %v", n, err)
			} else {
				t.Logf("second engine: removed the leftovers of slot %d", n)
			}
			releaseSlot(s, lock)
		}
	}
}

// teardownSlot removes everything of the slot's engine from the host, once
// dockerd has stopped or its owner is gone: processes started for it,
// mounts, bridge interfaces and directories. What is already gone counts as
// done.
func teardownSlot(s engineSlot) error {
	dirs := []string{s.dir(), s.execRoot()}
	var errs []error
	// A dockerd whose test process died got SIGTERM; give it the time to
	// stop its containers before the rest is killed.
	if pid, err := readPid(filepath.Join(s.dir(), "docker.pid")); err == nil && processUses(pid, dirs) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		waitGone([]int{pid}, engineStopTimeout)
	}
	errs = append(errs, unmountUnder(dirs))
	// containerd, shims, fuse-overlayfs: what dockerd did not take down.
	if pids := processesUsing(dirs); len(pids) > 0 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if left := waitGone(pids, 10*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("processes %v survived SIGKILL", left))
		}
		errs = append(errs, unmountUnder(dirs))
	}
	errs = append(errs, deleteBridges(s))
	for _, dir := range dirs {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// readPid reads a pid file.
func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// processUses reports whether process pid has one of dirs, or a path under
// it, in its command line.
func processUses(pid int, dirs []string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		for _, dir := range dirs {
			if i := bytes.Index(arg, []byte(dir)); i >= 0 {
				if rest := arg[i+len(dir):]; len(rest) == 0 || rest[0] == '/' {
					return true
				}
			}
		}
	}
	return false
}

// processesUsing lists the live processes with one of dirs in their
// command lines.
func processesUsing(dirs []string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		if processUses(pid, dirs) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid runs and is not a zombie, which an orphan of
// the engine becomes when the host's init does not reap it.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, in parentheses that it may
	// itself contain.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// waitGone waits up to d for pids to exit and returns those still alive.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		<-tick.C
	}
}

// unmountUnder detaches every mount at or under dirs: fuse-overlayfs
// layers, network namespaces, the data root's private bind mount.
func unmountUnder(dirs []string) error {
	// A mount may hide another at the same point: go round until none
	// is left.
	for round := 0; ; round++ {
		points, err := mountinfo.Under(dirs...)
		if err != nil || len(points) == 0 {
			return err
		}
		if round == 5 {
			return fmt.Errorf("mounts left after unmounting: %s", strings.Join(points, ", "))
		}
		for _, p := range points {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", p, err)
			}
		}
	}
}

// deleteBridges deletes the slot's bridge and those of the networks created
// on its engine: every interface with an address in the slot's subnet.
// dockerd keeps them when it stops, for its next start.
func deleteBridges(s engineSlot) error {
	names, err := interfacesIn(s.subnet())
	if err != nil {
		return err
	}
	if _, err := net.InterfaceByName(s.bridge()); err == nil && !slices.Contains(names, s.bridge()) {
		names = append(names, s.bridge())
	}
	var errs []error
	for _, name := range names {
		if out, err := exec.Command("ip", "link", "delete", name).CombinedOutput(); err != nil {
			if _, gone := net.InterfaceByName(name); gone != nil {
				continue
			}
			errs = append(errs, fmt.Errorf("ip link delete %s: %w: %s", name, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// interfacesIn lists the interfaces with an IPv4 address in subnet.
func interfacesIn(subnet netip.Prefix) ([]string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var names []string
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			continue // gone since the listing
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && subnet.Contains(ip.Unmap()) {
					names = append(names, iface.Name)
					break
				}
			}
		}
	}
	return names, nil
}

// createBridge creates a bridge interface with address addr and brings it
// up.
func createBridge(name string, addr netip.Prefix) error {
	for _, args := range [][]string{
		{"link", "add", "name", name, "type", "bridge"},
		{"addr", "add", addr.String(), "dev", name},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// hostPrefixes lists the IPv4 routes of the host's main table and the
// subnets of its interface addresses.
func hostPrefixes() ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := hex.DecodeString(f[1])
		mask, err2 := hex.DecodeString(f[7])
		if err1 != nil || err2 != nil || len(dst) != 4 || len(mask) != 4 {
			continue
		}
		// /proc/net/route prints addresses in host byte order.
		var d, m [4]byte
		binary.BigEndian.PutUint32(d[:], binary.LittleEndian.Uint32(dst))
		binary.BigEndian.PutUint32(m[:], binary.LittleEndian.Uint32(mask))
		bits, _ := net.IPMask(m[:]).Size()
		if bits == 0 {
			continue // the default route overlaps everything and takes nothing
		}
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked())
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap().Is4() {
				bits, _ := ipn.Mask.Size()
				prefixes = append(prefixes, netip.PrefixFrom(ip.Unmap(), bits).Masked())
			}
		}
	}
	return prefixes, nil
}
