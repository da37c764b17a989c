package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
)

// Availability reports whether jt can run on this node.
func (r *Runner) Availability(jt jobtypes.JobType) Availability {
	r.imagesMu.RLock()
	a := Availability{Image: r.images[jt.Name]}
	imageErr := r.imageErrors[jt.Name]
	r.imagesMu.RUnlock()
	a.ImageExists = a.Image != ""
	runtime, reason := resolveRuntime(jt, r.gvisor)
	a.Runtime = runtime
	if reason == "" && jt.Network == jobtypes.NetworkAllow {
		reason = r.egressUnavailable()
	}
	switch {
	case reason != "":
		a.Reason = reason
	case !a.ImageExists && imageErr != "":
		a.Reason = fmt.Sprintf("the image of job type %q could not be built: %s", jt.Name, imageErr)
	case !a.ImageExists:
		a.Reason = fmt.Sprintf("the image of job type %q is not built; run `tako setup`", jt.Name)
	default:
		a.Available = true
	}
	a.Pool, _ = r.poolTotals(jt.Name)
	a.PythonVersion = r.opts.PythonVersions[jt.Name]
	return a
}

// PoolStats returns the state of the pool of job type name; ok is false
// when it has none.
func (r *Runner) PoolStats(name string) (PoolStats, bool) {
	p := r.pools[name]
	if p == nil {
		return PoolStats{}, false
	}
	return p.stats(), true
}

// poolTotals adds up the pools of job type name: its own and those of its
// hot requirement sets. ok is false when it has none.
func (r *Runner) poolTotals(name string) (total PoolStats, ok bool) {
	if p := r.pools[name]; p != nil {
		total, ok = p.stats(), true
	}
	if r.reqs != nil {
		for _, st := range r.reqs.poolStats(name) {
			total.Warm, total.Busy, total.Target = total.Warm+st.Warm, total.Busy+st.Busy, total.Target+st.Target
			total.Hits, total.Misses = total.Hits+st.Hits, total.Misses+st.Misses
			if st.Failures > total.Failures {
				total.Failures, total.LastError = st.Failures, st.LastError
			}
			ok = true
		}
	}
	return total, ok
}

// RemovalsPending is how many used containers wait for their removal on
// this node, for the metrics; 0 before Start. It does no I/O.
func (r *Runner) RemovalsPending() int {
	if r.launch == nil {
		return 0
	}
	return r.launch.engine.backlog()
}

// PoolSamples returns the pools of every job type that has one, for the
// metrics. It does no I/O.
func (r *Runner) PoolSamples() []metrics.PoolSample {
	var out []metrics.PoolSample
	for _, jt := range r.opts.JobTypes {
		if st, ok := r.poolTotals(jt.Name); ok {
			out = append(out, metrics.PoolSample{JobType: jt.Name, Warm: st.Warm, Busy: st.Busy, Target: st.Target})
		}
	}
	return out
}

// Health pings Docker and reports the runner's load.
func (r *Runner) Health(ctx context.Context) Health {
	h := Health{
		GVisorAvailable: r.gvisor.usable,
		GVisorInstalled: r.gvisor.installed,
		GVisorReason:    r.gvisor.reason,
		GVisorFix:       r.gvisorFixIfNeeded(),
		GVisorRuntime:   r.gvisor.name,
		MaxConcurrent:   cap(r.slots),
		Running:         len(r.slots),
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := r.docker.Ping(ctx); err != nil {
		h.DockerError = "cannot reach the Docker engine"
	} else {
		h.DockerAvailable = true
	}
	return h
}

// gvisorFixIfNeeded is what to do about an unusable gVisor, "" when it is
// usable.
func (r *Runner) gvisorFixIfNeeded() string {
	if r.gvisor.usable {
		return ""
	}
	return gvisorFix(r.gvisor)
}
