package runnertest

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/tako-run/tako/internal/mountinfo"
)

func TestSecondEngine(t *testing.T) {
	dc := Docker(t)
	ref := ExecutorImage(t, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var (
		e        *Engine
		dockerd  int
		leftover string // the bridge of a network left on the engine
	)
	t.Run("engine", func(t *testing.T) {
		e = SecondEngine(t, ref)
		dockerd = e.cmd.Process.Pid

		t.Run("its own", func(t *testing.T) {
			mainInfo, err := dc.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			info, err := e.Client.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.ID == mainInfo.ID {
				t.Errorf("engine ID %s is the main engine's", info.ID)
			}
			if info.DockerRootDir != e.DataRoot {
				t.Errorf("data root %s, want %s", info.DockerRootDir, e.DataRoot)
			}
			if info.Driver != mainInfo.Driver {
				t.Errorf("storage driver %s, want the main engine's %s", info.Driver, mainInfo.Driver)
			}
			// Its managed containerd listens under its exec root.
			pid, err := readPid(filepath.Join(e.ExecRoot, "containerd", "containerd.pid"))
			if err != nil {
				t.Fatalf("the engine's containerd: %v", err)
			}
			if !processUses(pid, []string{e.ExecRoot}) {
				t.Errorf("containerd %d does not run from %s", pid, e.ExecRoot)
			}
			if fi, err := os.Stat(filepath.Join(e.ExecRoot, "containerd", "containerd.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
				t.Errorf("no containerd socket under %s: %v", e.ExecRoot, err)
			}
			if docker, err := exec.LookPath("docker"); err == nil {
				cmd := exec.CommandContext(ctx, docker, "info", "--format", "{{.DockerRootDir}}")
				cmd.Env = append(os.Environ(), e.Env())
				out, err := cmd.CombinedOutput()
				if got := strings.TrimSpace(string(out)); err != nil || got != e.DataRoot {
					t.Errorf("docker info with %s: %q, %v; want %s", e.Env(), got, err, e.DataRoot)
				}
			}
		})

		t.Run("image copied with its tag", func(t *testing.T) {
			img, err := e.Client.ImageInspect(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(img.RepoTags, ref) {
				t.Errorf("tags %v, want %s among them", img.RepoTags, ref)
			}
		})

		t.Run("runs containers the main engine does not see", func(t *testing.T) {
			out, id := runPython(t, ctx, e.Client, ref, "", `print("hello from the second engine")`)
			if out != "hello from the second engine\n" {
				t.Errorf("output %q", out)
			}
			if _, err := dc.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
				t.Errorf("the main engine inspects the second engine's container %s: %v", id, err)
			}
			// A running container, for the clean-up to remove.
			created, err := e.Client.ContainerCreate(ctx, &container.Config{
				Image: ref, Cmd: []string{"python3", "-c", "import time; time.sleep(600)"},
			}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Client.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("user-defined networks", func(t *testing.T) {
			// The shape of tako's egress network.
			opts := network.CreateOptions{
				Driver:   "bridge",
				Internal: true,
				Options:  map[string]string{"com.docker.network.bridge.enable_icc": "false"},
			}
			created, err := e.Client.NetworkCreate(ctx, "tako-test-internal", opts)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := runPython(t, ctx, e.Client, ref, "tako-test-internal",
				`import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("10.255.255.255", 9)); print(s.getsockname()[0])`)
			addr, err := netip.ParseAddr(strings.TrimSpace(out))
			if err != nil || !e.Subnet.Contains(addr) {
				t.Errorf("container address %q (%v), want one in %s", out, err, e.Subnet)
			}
			if err := e.Client.NetworkRemove(ctx, created.ID); err != nil {
				t.Errorf("remove network: %v", err)
			}
			// One left behind, for the clean-up to remove its bridge.
			left, err := e.Client.NetworkCreate(ctx, "tako-test-left", network.CreateOptions{Driver: "bridge"})
			if err != nil {
				t.Fatal(err)
			}
			leftover = "br-" + left.ID[:12]
			if _, err := net.InterfaceByName(leftover); err != nil {
				t.Errorf("the network's bridge: %v", err)
			}
		})

		t.Run("gVisor", func(t *testing.T) {
			name := GVisorRuntime(t, dc)
			mainInfo, err := dc.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			info, err := e.Client.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := info.Runtimes[name].Args, mainInfo.Runtimes[name].Args; !slices.Equal(got, want) {
				t.Errorf("runtime %s has arguments %v, want the main engine's %v", name, got, want)
			}
			// gVisor's kernel reports a release of its own.
			host, _ := runPython(t, ctx, e.Client, ref, "", `import platform; print(platform.release())`)
			sandboxed, _ := runPythonWith(t, ctx, e.Client, ref, "", name, `import platform; print(platform.release())`)
			if sandboxed == "" || sandboxed == host {
				t.Errorf("kernel release %q under %s, %q under runc: not gVisor", sandboxed, name, host)
			}
		})
	})
	if e == nil {
		return // skipped
	}

	t.Run("leaves nothing behind", func(t *testing.T) {
		if alive(dockerd) {
			t.Errorf("dockerd %d still runs", dockerd)
		}
		dirs := []string{e.slot.dir(), e.ExecRoot}
		if pids := processesUsing(dirs); len(pids) > 0 {
			t.Errorf("processes %v still use %s", pids, strings.Join(dirs, ", "))
		}
		if points, err := mountinfo.Under(dirs...); err != nil || len(points) > 0 {
			t.Errorf("mounts left: %v %v", points, err)
		}
		for _, name := range []string{e.Bridge, leftover} {
			if _, err := net.InterfaceByName(name); err == nil {
				t.Errorf("interface %s left", name)
			}
		}
		if names, err := interfacesIn(e.Subnet); err != nil || len(names) > 0 {
			t.Errorf("interfaces with addresses in %s left: %v %v", e.Subnet, names, err)
		}
		for _, path := range append(dirs, e.slot.lockPath()) {
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s left: %v", path, err)
			}
		}
	})
}

// runPython runs python3 -c code in a container of image on network netMode
// (none when empty) and returns what it printed and the container's ID.
func runPython(t *testing.T, ctx context.Context, dc *client.Client, image, netMode, code string) (string, string) {
	t.Helper()
	return runPythonWith(t, ctx, dc, image, netMode, "", code)
}

// runPythonWith is runPython under an OCI runtime of the engine's.
func runPythonWith(t *testing.T, ctx context.Context, dc *client.Client, image, netMode, runtime, code string) (string, string) {
	t.Helper()
	if netMode == "" {
		netMode = "none"
	}
	created, err := dc.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"python3", "-c", code}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netMode), Runtime: runtime}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	waitC, errC := dc.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := dc.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-waitC:
		if res.StatusCode != 0 {
			t.Errorf("container exited with %d", res.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := dc.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), created.ID
}
