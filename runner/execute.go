package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/bootstrap"
)

// reservation is a program admitted to run on this node: the image it runs
// in exists and it holds an execution slot. run runs it once; release,
// which must follow, gives the slot back and hands the used container to
// the engine's schedule for removal.
type reservation struct {
	r       *Runner
	req     Request
	spec    containerSpec
	pool    *pool // nil: no pool for this job type and image
	arrived time.Time
	queued  time.Duration

	free func()
	once sync.Once
	used *jobContainer // the container run used, removed by release
	took bool          // run took from pool, and release tells it
}

// Reserve admits req on this node. It finds or builds the image of the
// request's ad-hoc requirements, then waits at most AcquireTimeout for an
// execution slot. run runs the program once. release gives the slot back
// and, after run, starts the removal of the used container and the pool's
// refill; it must be called, run or not, and is idempotent. A caller that
// records the result calls release after that, so that this engine work
// does not slow the record on a small machine. Errors mean the program
// cannot run here: a *jobs.Error with EUNAVAILABLE when the node is busy,
// the job type cannot run or Docker is down, EINVALID when the
// requirements cannot be met.
func (r *Runner) Reserve(ctx context.Context, req Request) (run func(context.Context) (*jobs.Result, error), release func(), err error) {
	arrived := time.Now()
	jt := req.JobType
	avail := r.Availability(jt)
	if !avail.Available {
		return nil, nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Field: "job_type", Message: avail.Reason, RetryAfter: 60}
	}
	spec := containerSpec{image: avail.Image, jobType: jt, runtime: avail.Runtime}
	p := r.pools[jt.Name]
	releaseImage := func() {}
	if len(req.Requirements) > 0 {
		img, reqPool, done, err := r.reqs.image(ctx, spec, req.Requirements)
		if err != nil {
			return nil, nil, dockerError(err)
		}
		spec.image, p, releaseImage = img, reqPool, done
	}
	releaseSlot, err := r.acquire(ctx)
	if err != nil {
		releaseImage()
		return nil, nil, err
	}
	res := &reservation{
		r: r, req: req, spec: spec, pool: p, arrived: arrived, queued: time.Since(arrived),
		free: func() { releaseSlot(); releaseImage() },
	}
	return res.run, res.release, nil
}

// release ends the reservation, once: the used container goes to the
// engine's schedule for removal, the pool learns that the job ended, and
// the slot is given back.
func (res *reservation) release() {
	res.once.Do(func() {
		if res.used != nil {
			res.r.launch.discard(res.used)
		}
		if res.took {
			res.pool.done()
		}
		res.free()
	})
}

// run runs the reserved program in a container of its own, warm from the
// pool when there is one, and returns its result. A program that fails is
// a Result with a failure status, not an error; errors mean tako could not
// run the program.
func (res *reservation) run(ctx context.Context) (*jobs.Result, error) {
	r, jt := res.r, res.spec.jobType
	defer r.opts.Metrics.JobStarted(jt.Name)()

	// A warm container from the pool when there is one; otherwise a cold
	// start through the same bootstrap.
	start, began := jobs.StartWarm, time.Now()
	var c *jobContainer
	if res.pool != nil {
		c, res.took = res.pool.take(), true
	}
	if c == nil {
		start = jobs.StartCold
		var err error
		if c, err = r.launch.start(ctx, res.spec, urgent); err != nil {
			return nil, dockerError(err)
		}
	}
	r.opts.Metrics.Checkout(jt.Name, start == jobs.StartWarm)
	res.used = c
	if out := res.req.Output; out != nil {
		out.Started(start)
		c.stdout.follow(out, jobs.ChunkStdout)
		c.stderr.follow(out, jobs.ChunkStderr)
	}
	result, err := r.run(ctx, c, res.req, began)
	if err != nil {
		return nil, dockerError(err)
	}
	result.Start = start
	result.Timing.Queue = res.queued
	result.Timing.Total = time.Since(res.arrived)
	return result, nil
}

// Execute reserves, runs and releases req.
func (r *Runner) Execute(ctx context.Context, req Request) (*jobs.Result, error) {
	run, release, err := r.Reserve(ctx, req)
	if err != nil {
		return nil, err
	}
	defer release()
	return run(ctx)
}

// acquire takes an execution slot, waiting at most AcquireTimeout.
func (r *Runner) acquire(ctx context.Context) (func(), error) {
	release := func() { <-r.slots }
	select {
	case r.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(r.opts.AcquireTimeout)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: fmt.Sprintf("all %d execution slots are busy; try again shortly", cap(r.slots)), RetryAfter: 1}
	case <-ctx.Done():
		return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "server is shutting down", RetryAfter: 1}
	}
}

// dockerError turns an unreachable engine into EUNAVAILABLE and wraps the rest.
func dockerError(err error) error {
	var e *jobs.Error
	if errors.As(err, &e) {
		return err
	}
	if client.IsErrConnectionFailed(err) {
		return &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "the Docker engine is unavailable", RetryAfter: 5}
	}
	return fmt.Errorf("run job: %w", err)
}

// endKind is how an execution ended, as run saw it.
type endKind int

const (
	endReported       endKind = iota // the bootstrap's supervisor reported the program's end
	endExited                        // the container exited without a report
	endTimeout                       // killed at the run-time limit
	endStartupTimeout                // killed before it was ready
	endOutputFull                    // killed for what it wrote to /output
	endCancelled                     // killed because the execution was cancelled
)

// outcome is what happened to one program, before it becomes a result.
type outcome struct {
	kind      endKind
	end       bootstrap.End // endReported: the supervisor's report
	exitCode  int           // endExited: the container's exit code
	oomKilled bool          // endExited: the engine saw an out-of-memory kill
	memory    int64         // endExited: the container's memory limit
	timeout   time.Duration // endTimeout, endStartupTimeout: the limit
	why       string        // endOutputFull: the bound the program broke
	outputErr string        // why /output/result.json is unusable, "" when fine
}

// resultOf decides the status, exit code and error of an outcome: the one
// place where they are set.
func resultOf(o outcome) (jobs.Status, int, *jobs.ExecError) {
	status, code, err := endOf(o)
	if status == jobs.StatusSucceeded && o.outputErr != "" {
		return jobs.StatusFailed, code, &jobs.ExecError{Type: jobs.ErrOutputError, Message: o.outputErr}
	}
	return status, code, err
}

// endOf decides resultOf's answer from how the program ended alone.
func endOf(o outcome) (jobs.Status, int, *jobs.ExecError) {
	switch o.kind {
	case endReported:
		code := o.end.ExitCode
		switch {
		case o.end.Signal != 0:
			if t, ok := jobs.ClassifySignal(code); ok {
				return jobs.StatusFailed, code, &jobs.ExecError{Type: t, Message: fmt.Sprintf("the program was killed by signal %d", o.end.Signal)}
			}
			return jobs.StatusFailed, code, &jobs.ExecError{Type: jobs.ErrRuntimeError, Message: fmt.Sprintf("the program was killed by signal %d", o.end.Signal)}
		case code == 0:
			return jobs.StatusSucceeded, 0, nil
		case o.end.ExcType != "":
			// The program's own report of its exception: a hint that names
			// the error, never what decides that it failed.
			return jobs.StatusFailed, code, &jobs.ExecError{Type: jobs.ClassifyException(o.end.ExcType), Message: o.end.ExcType + ": " + o.end.Message}
		default:
			return jobs.StatusFailed, code, &jobs.ExecError{Type: jobs.ErrRuntimeError, Message: fmt.Sprintf("the program exited with code %d", code)}
		}
	case endExited:
		code := o.exitCode
		switch {
		case o.oomKilled:
			return jobs.StatusOOM, code, &jobs.ExecError{Type: jobs.ErrOOM, Message: fmt.Sprintf("the program ran out of memory (limit %s) and was killed", jobtypes.FormatSize(o.memory))}
		case code == 0:
			return jobs.StatusSucceeded, 0, nil
		default:
			if t, ok := jobs.ClassifySignal(code); ok {
				return jobs.StatusFailed, code, &jobs.ExecError{Type: t, Message: fmt.Sprintf("the program was killed (exit code %d)", code)}
			}
			return jobs.StatusFailed, code, &jobs.ExecError{Type: jobs.ErrRuntimeError, Message: fmt.Sprintf("the program exited with code %d", code)}
		}
	case endTimeout:
		return jobs.StatusTimeout, 124, &jobs.ExecError{Type: jobs.ErrTimeout, Message: fmt.Sprintf("execution exceeded the %s timeout and was killed", o.timeout)}
	case endStartupTimeout:
		return jobs.StatusTimeout, 124, &jobs.ExecError{Type: jobs.ErrStartupTimeout, Message: fmt.Sprintf("the container was not ready within %s", o.timeout)}
	case endOutputFull:
		return jobs.StatusFailed, 137, &jobs.ExecError{Type: jobs.ErrOutputError, Message: "the program was killed: " + o.why}
	default: // endCancelled
		return jobs.StatusCancelled, 137, &jobs.ExecError{Type: jobs.ErrCancelled, Message: "the execution was cancelled"}
	}
}

// run gives the program to a started container, triggers it, sees how it
// ends and collects its result. The answer goes back as soon as both end
// markers have arrived; the container is removed afterwards by the caller,
// off the request path.
//
// began is when the job began to get its container: the start-up time is
// measured from there to the bootstrap's ready markers.
func (r *Runner) run(ctx context.Context, c *jobContainer, req Request, began time.Time) (*jobs.Result, error) {
	res := &jobs.Result{Image: c.image, Runtime: c.runtime}
	c.openEgress(req)
	o, err := r.observe(ctx, c, req, began, &res.Timing)
	res.Egress = c.closeEgress()
	r.opts.Metrics.EgressAttempts(req.JobType.Name, res.Egress)
	if err != nil {
		return nil, err
	}
	o.outputErr = r.collect(c, res)
	res.Status, res.ExitCode, res.Error = resultOf(o)
	blameEgress(res)
	return res, nil
}

// observe runs the program in c and returns how it ended, recording the
// start-up and run times in timing.
func (r *Runner) observe(ctx context.Context, c *jobContainer, req Request, began time.Time, timing *jobs.Timing) (outcome, error) {
	startupTimeout := req.StartupTimeout
	if startupTimeout == 0 {
		startupTimeout = r.opts.StartupTimeout
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = req.JobType.Limits.Timeout
	}
	if err := c.slot.fill(req.Code, req.InputJSON); err != nil {
		return outcome{}, err
	}
	startup := time.NewTimer(startupTimeout)
	defer startup.Stop()
	for _, ready := range []chan struct{}{c.stdout.readyCh, c.stderr.readyCh} {
		select {
		case <-ready:
		case <-c.streamDone:
			return r.exited(c)
		case <-startup.C:
			return r.stop(c, outcome{kind: endStartupTimeout, timeout: startupTimeout}), nil
		case <-ctx.Done():
			return r.stop(c, outcome{kind: endCancelled}), nil
		}
	}
	if err := c.sendTrigger(req.Code); err != nil {
		return r.exited(c)
	}
	triggered := time.Now()
	timing.Start = triggered.Sub(began)
	defer func() { timing.Run = time.Since(triggered) }()

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	outputFull := watchOutput(watchCtx, c.slot.output(), r.opts.Limits.MaxOutputBytes)
	for ended := 0; ended < 2; {
		select {
		case <-c.stdout.endCh:
			c.stdout.endCh, ended = nil, ended+1
		case <-c.stderr.endCh:
			c.stderr.endCh, ended = nil, ended+1
		case <-c.streamDone:
			// The streams end right after the markers: when both came, the
			// program finished normally, whichever event select saw first.
			if !c.ended() {
				return r.exited(c)
			}
			ended = 2
		case <-deadline.C:
			return r.stop(c, outcome{kind: endTimeout, timeout: timeout}), nil
		case why := <-outputFull:
			return r.stop(c, outcome{kind: endOutputFull, why: why}), nil
		case <-ctx.Done():
			return r.stop(c, outcome{kind: endCancelled}), nil
		}
	}
	_, _, end := c.stdout.result()
	if end.Signal == int(syscall.SIGKILL) {
		// The kernel killed the program, perhaps for memory, which only the
		// engine knows: the supervisor exits right after its report.
		return r.exited(c)
	}
	return outcome{kind: endReported, end: *end}, nil
}

// stop kills c and waits a little for its streams to end, so that output
// written before the kill is kept; it returns o.
func (r *Runner) stop(c *jobContainer, o outcome) outcome {
	r.launch.kill(c)
	c.endStreams(2 * time.Second)
	return o
}

// exitWait bounds how long exited waits for a container that stopped
// talking to exit by itself before it kills it.
const exitWait = 10 * time.Second

// exited is the outcome of a container whose program did not report its
// end: it called os._exit before its supervisor could, the supervisor was
// killed, or the container was (out of memory, a signal). The engine's exit
// code decides.
func (r *Runner) exited(c *jobContainer) (outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), exitWait+10*time.Second)
	defer cancel()
	waitCtx, stopWait := context.WithTimeout(ctx, exitWait)
	defer stopWait()
	waitCh, errCh := r.docker.ContainerWait(waitCtx, c.id, container.WaitConditionNotRunning)
	select {
	case <-waitCh:
	case err := <-errCh:
		if waitCtx.Err() == nil {
			return outcome{}, fmt.Errorf("wait for container: %w", err)
		}
		// Still running without its streams: stop it, and let the engine
		// say how it ended.
		r.launch.kill(c)
	}
	info, err := r.inspectExited(ctx, c.id)
	if err != nil {
		return outcome{}, fmt.Errorf("inspect container: %w", err)
	}
	o := outcome{kind: endExited, oomKilled: r.ooms.killed(c.id)}
	if info.State != nil {
		o.exitCode, o.oomKilled = info.State.ExitCode, o.oomKilled || info.State.OOMKilled
	}
	if info.HostConfig != nil {
		o.memory = info.HostConfig.Memory
	}
	return o, nil
}

// oomSettle bounds how long inspectExited waits for the engine to record
// an out-of-memory kill. On a loaded 2-core machine the event came more than
// a second after the exit; only a SIGKILL without it waits this long.
const oomSettle = 3 * time.Second

// inspectExited inspects a container that exited. The engine handles the
// exit and the out-of-memory event of one container separately, and under
// load or gVisor the exit can come first: a SIGKILL (exit 137) that neither
// OOMKilled nor an "oom" event explains is looked at again for a moment
// before it is taken for a plain kill.
func (r *Runner) inspectExited(ctx context.Context, id string) (container.InspectResponse, error) {
	deadline := time.Now().Add(oomSettle)
	for {
		info, err := r.docker.ContainerInspect(ctx, id)
		if err != nil || info.State == nil || info.State.OOMKilled || r.ooms.killed(id) || info.State.ExitCode != 137 || time.Now().After(deadline) {
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// collect copies the captured output and what the program left in /output
// into res, and returns why result.json cannot be used ("" when it can, or
// is absent). Every process of the program has ended by now (the
// supervisor killed what it left behind, or tako killed the container), so
// /output no longer changes.
func (r *Runner) collect(c *jobContainer, res *jobs.Result) string {
	began := time.Now()
	stdout, outTrunc, _ := c.stdout.result()
	stderr, errTrunc, _ := c.stderr.result()
	res.Stdout, res.StdoutTruncated = string(stdout), outTrunc
	res.Stderr, res.StderrTruncated = string(stderr), errTrunc
	got := collectOutput(c.slot.output(), r.opts.Limits)
	res.Output, res.Artifacts, res.ArtifactBytes = got.output, got.artifacts, got.contents
	res.ArtifactsTruncated = got.truncated
	res.Timing.Collect = time.Since(began)
	return got.outputErr
}
