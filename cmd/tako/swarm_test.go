package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/tako-run/tako/runner/runnertest"
)

// swarmHostPortsFile is deploy/swarm-host-ports.yaml, the override for
// hosts without IPVS, from this package's directory.
const swarmHostPortsFile = "../../deploy/swarm-host-ports.yaml"

// TestSwarm: deploy/compose.yaml deploys as a swarm stack on a swarm of
// this one engine, with a worker as a global service; the quick start
// works through the load balancer, and still does with the api service
// scaled to 3. Removing the stack and leaving the swarm leaves nothing
// behind. An engine already in a swarm fails the test untouched.
func TestSwarm(t *testing.T) {
	docker := requireTool(t, "docker")
	dc := runnertest.Docker(t)
	ctx := context.Background()
	info, err := dc.Info(ctx)
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive {
		t.Fatalf("the engine is in a swarm already (%s): this test makes a swarm of its own and leaves it, so it does not run here", info.Swarm.LocalNodeState)
	}
	runnertest.ExecutorImage(t, dc)
	st := newStack(t, dc, "takoswarm")
	dockerCmd := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, docker, args...)
		cmd.Env = st.env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	logs := func() string {
		out, _ := dockerCmd("stack", "ps", "--no-trunc", st.name)
		for _, svc := range []string{"api", "worker", "lb", "postgres"} {
			l, _ := dockerCmd("service", "logs", "--tail", "30", st.name+"_"+svc)
			out += "\n--- " + svc + "\n" + l
		}
		return out
	}

	// Swarm leaves docker_gwbridge behind; remove it unless it was there.
	gwbridge := hasNetwork(t, dc, "docker_gwbridge")
	began := time.Now()
	if out, err := dockerCmd("swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
		t.Fatalf("docker swarm init: %v\n%s", err, out)
	}
	stackRm := func() (string, error) {
		out, err := dockerCmd("stack", "rm", st.name)
		if err != nil {
			return out, err
		}
		return out, st.waitStackGone(t)
	}
	t.Cleanup(func() {
		st.teardown(t, stackRm)
		if out, err := dockerCmd("swarm", "leave", "--force"); err != nil && !strings.Contains(out, "not part of a swarm") {
			t.Errorf("docker swarm leave: %v\n%s", err, out)
		}
		if !gwbridge {
			dc.NetworkRemove(context.Background(), "docker_gwbridge")
		}
	})

	files := []string{"-c", composeFile}
	if _, err := os.Stat("/sys/module/ip_vs"); err != nil {
		// No routing mesh without IPVS: publish on the node.
		files = append(files, "-c", swarmHostPortsFile)
	}
	args := append(append([]string{"stack", "deploy", "--resolve-image", "never", "--prune"}, files...), st.name)
	if out, err := dockerCmd(args...); err != nil {
		t.Fatalf("docker stack deploy: %v\n%s", err, out)
	}
	c := st.client()
	defer c.close()
	c.waitHealthy(t, 5*time.Minute, logs)
	t.Logf("swarm init and stack deploy to healthy through the load balancer: %s", time.Since(began).Round(100*time.Millisecond))
	quickStart(t, c)
	if n := st.runningTasks(t, "worker"); n != 1 {
		t.Errorf("%d worker tasks running, want 1 (global, one node)", n)
	}

	t.Run("scaled to 3 api replicas it still serves", func(t *testing.T) {
		if out, err := dockerCmd("service", "scale", "--detach", st.name+"_api=3"); err != nil {
			t.Fatalf("docker service scale: %v\n%s", err, out)
		}
		began := time.Now().Add(-time.Hour) // every replica, since its start
		load := startLoad(c)
		deadline := time.Now().Add(3 * time.Minute)
		for st.runningTasks(t, "api") != 3 {
			if time.Now().After(deadline) {
				load.stopAndCheck(t, 0)
				t.Fatalf("the api service has not 3 running tasks within 3 minutes\n%s", logs())
			}
			time.Sleep(time.Second)
		}
		// Let the load balancer send work to the new replica too.
		for _, id := range st.containers(t, map[string]string{"com.docker.swarm.service.name": st.name + "_api"}) {
			waitServing(t, dc, id, began, logs)
		}
		load.stopAndCheck(t, 10)
		quickStart(t, c)
	})

	began = time.Now()
	if out, err := stackRm(); err != nil {
		t.Fatalf("docker stack rm: %v\n%s", err, out)
	}
	// docker stack rm keeps named volumes; the stack's are this test's.
	for _, l := range st.leftovers(t) {
		if name, ok := strings.CutPrefix(l, "volume "); ok {
			if err := dc.VolumeRemove(ctx, name, false); err != nil {
				t.Errorf("remove volume %s: %v", name, err)
			}
		}
	}
	if out, err := dockerCmd("swarm", "leave", "--force"); err != nil {
		t.Fatalf("docker swarm leave: %v\n%s", err, out)
	}
	t.Logf("stack rm and swarm leave: %s", time.Since(began).Round(100*time.Millisecond))
	st.assertGone(t, "the stack")
	if info, err := dc.Info(ctx); err != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive {
		t.Errorf("after docker swarm leave: %v, swarm state %q", err, info.Swarm.LocalNodeState)
	}
}

// waitStackGone waits until the swarm stack's containers and networks are
// gone, as they go some time after docker stack rm returns.
func (st *stack) waitStackGone(t *testing.T) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var left []string
		for _, l := range st.leftovers(t) {
			if !strings.HasPrefix(l, "volume ") {
				left = append(left, l)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the stack's containers and networks are still there 3 minutes after docker stack rm: %s", strings.Join(left, ", "))
		}
		time.Sleep(time.Second)
	}
}

// runningTasks counts the running containers of the stack's service svc.
func (st *stack) runningTasks(t *testing.T, svc string) int {
	t.Helper()
	return len(st.containers(t, map[string]string{"com.docker.swarm.service.name": st.name + "_" + svc}))
}

// hasNetwork reports whether the engine has a network called name.
func hasNetwork(t *testing.T, dc interface {
	NetworkList(context.Context, network.ListOptions) ([]network.Summary, error)
}, name string) bool {
	t.Helper()
	ns, err := dc.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		t.Fatalf("list networks: %v", err)
	}
	for _, n := range ns {
		if n.Name == name {
			return true
		}
	}
	return false
}
