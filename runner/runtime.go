package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/system"

	"github.com/tako-run/tako/jobtypes"
)

// The OCI runtimes tako knows, as records name them.
const (
	runtimeGVisor = string(jobtypes.RuntimeGVisor)
	runtimeRunc   = string(jobtypes.RuntimeRunc)
)

// GVisorOptions says how to find and check the engine's gVisor runtime.
type GVisorOptions struct {
	// Runtime is the name runsc is registered under; "" means "runsc".
	Runtime string
	// RequiredArgs are the runtime arguments the registration must carry
	// (--host-fifo=open: the bootstrap's transport is host FIFOs).
	RequiredArgs []string
	// ProbeImage is the image the probe container runs, one with Python;
	// "" skips the probe, and gVisor is then unusable.
	ProbeImage string
}

// gvisor is what the runner found out about the engine's gVisor runtime at
// start-up.
type gvisor struct {
	name      string   // the runtime's name in the engine
	path      string   // its runsc binary, "" when not installed
	want      []string // the runtime arguments tako needs
	installed bool     // the engine lists it
	usable    bool     // it passed the probe
	reason    string   // why it is not usable; "" when it is
}

// hostFIFOOpen is the runsc flag that lets the sandbox open host FIFOs: the
// bootstrap's transport.
const hostFIFOOpen = "--host-fifo=open"

// probeTimeout bounds the probe container: a cold gVisor start takes 1-2 s
// on a loaded 2-core machine, and a runtime that cannot open the
// transport's FIFOs hangs until this ends.
const probeTimeout = 20 * time.Second

// probeGVisor decides whether jobs may run under gVisor: the engine has the
// runtime, registered with the arguments tako's transport needs, and a
// probe container under it runs Python through the real transport.
func (r *Runner) probeGVisor(ctx context.Context, info system.Info) gvisor {
	o := r.opts.GVisor
	g := gvisor{name: o.Runtime, want: o.RequiredArgs}
	rt, ok := info.Runtimes[g.name]
	if !ok {
		g.reason = fmt.Sprintf("the Docker engine has no runtime %q", g.name)
		return g
	}
	g.installed, g.path = true, rt.Path
	for _, want := range o.RequiredArgs {
		if !slices.Contains(rt.Args, want) {
			g.reason = fmt.Sprintf("the Docker runtime %q lacks the argument %s (runtimeArgs: %q), without which gVisor cannot open tako's transport", g.name, want, rt.Args)
			return g
		}
	}
	if o.ProbeImage == "" {
		g.reason = "no job type image to run the gVisor probe container with"
		return g
	}
	if err := r.probe(ctx, o.ProbeImage); err != nil {
		g.reason = fmt.Sprintf("the probe container under runtime %q failed: %v", g.name, err)
		return g
	}
	g.usable = true
	return g
}

// probe runs print(1+1) under gVisor through the same launcher, bootstrap
// and transport as every job, and fails unless it prints 2.
func (r *Runner) probe(ctx context.Context, image string) error {
	jt := jobtypes.JobType{
		Name:    "gvisor-probe",
		Network: jobtypes.NetworkNone,
		Limits: jobtypes.Limits{
			CPUs: 1, Memory: 256 << 20, Pids: 32, NoFile: 256,
			FileSize: 16 << 20, Tmp: 16 << 20, Timeout: probeTimeout,
		},
		Runtime: jobtypes.RuntimeGVisor,
	}
	ctx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
	defer cancel()
	began := time.Now()
	c, err := r.launch.start(ctx, containerSpec{image: image, jobType: jt, runtime: runtimeGVisor}, urgent)
	if err != nil {
		return err
	}
	defer r.launch.discard(c)
	res, err := r.run(ctx, c, Request{Code: "print(1+1)", JobType: jt, StartupTimeout: probeTimeout}, began)
	switch {
	case err != nil:
		return err
	case res.Error != nil:
		return fmt.Errorf("%s: %s", res.Error.Type, res.Error.Message)
	case strings.TrimSpace(res.Stdout) != "2":
		return fmt.Errorf("it printed %q, not 2", res.Stdout)
	}
	return nil
}

// resolveRuntime picks the OCI runtime of a job type, given what the
// runner found out about gVisor. It returns "" and the reason when the job
// type cannot run: strict mode, and a pinned runsc, fail closed without a
// usable gVisor; permissive mode falls back to runc.
func resolveRuntime(jt jobtypes.JobType, g gvisor) (runtime, reason string) {
	switch {
	case jt.Runtime == jobtypes.RuntimeRunc:
		return runtimeRunc, ""
	case g.usable:
		return runtimeGVisor, ""
	case jt.SecurityMode == jobtypes.Strict, jt.Runtime == jobtypes.RuntimeGVisor:
		why := "security_mode strict requires gVisor"
		if jt.SecurityMode != jobtypes.Strict {
			why = "runtime runsc requires gVisor"
		}
		return "", fmt.Sprintf("%s, but %s; %s", why, g.reason, gvisorFix(g))
	default:
		return runtimeRunc, ""
	}
}

// gvisorFix says what an operator does about an unusable gVisor.
func gvisorFix(g gvisor) string {
	if !g.installed {
		return fmt.Sprintf("install gVisor and register it with Docker as %q (make gvisor, or tako gvisor register --path /path/to/runsc), or set security_mode: permissive for this job type", g.name)
	}
	args := []string{hostFIFOOpen}
	for _, a := range g.want {
		if !slices.Contains(args, a) {
			args = append(args, a)
		}
	}
	entry, _ := json.Marshal(map[string]any{"runtimes": map[string]any{g.name: map[string]any{"path": g.path, "runtimeArgs": args}}})
	return fmt.Sprintf("merge %s into /etc/docker/daemon.json and send SIGHUP to dockerd (tako gvisor register --path %s --name %s does both), then run tako doctor", entry, g.path, g.name)
}
