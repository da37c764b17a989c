package runner

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/egress"
)

// EgressOptions configure the egress gateway that the runner starts for
// job types with an allowlist (and that requirement builds download
// through).
type EgressOptions struct {
	// AllowPrivate are the private networks allowlisted hosts may resolve
	// to (egress.allow_private_networks).
	AllowPrivate []netip.Prefix
	// Hosts pins names to addresses for the proxy (egress.hosts).
	Hosts map[string]netip.Addr
}

// noProxy is NO_PROXY in job containers: only the container itself is
// reached without the proxy.
const noProxy = "localhost,127.0.0.1,::1"

// startEgress starts the instance's egress gateway. A gateway that cannot
// start leaves the job types with an allowlist unavailable, and says why.
func (r *Runner) startEgress(ctx context.Context, in *instance) {
	g, err := egress.Start(ctx, r.docker, egress.Options{
		Instance: in.id, LockPath: in.lockPath, Logger: r.logger,
		AllowPrivate: r.opts.Egress.AllowPrivate, Hosts: r.opts.Egress.Hosts,
	})
	if err != nil {
		r.egressErr = "the egress proxy could not start: " + err.Error()
		r.logger.Error("egress gateway unavailable: job types with an allowlist and requests with requirements are refused", "error", err)
		return
	}
	r.egress = g
	r.launch.egress = g
}

// Egress returns the instance's egress gateway, nil when it is not
// running.
func (r *Runner) Egress() *egress.Gateway { return r.egress }

// egressUnavailable says why job types with an allowlist cannot run here,
// "" when they can.
func (r *Runner) egressUnavailable() string {
	switch {
	case r.egress == nil && r.egressErr != "":
		return r.egressErr
	case r.egress == nil:
		return "this node runs no egress proxy, which job types with network.allow need"
	}
	if ok, why := r.egress.Guarded(); !ok {
		return "the host firewall that keeps jobs on the egress network off the host's ports could not be set up: " + why
	}
	return ""
}

// networkMode is the Docker network of jt's containers.
func (l *launcher) networkMode(jt jobtypes.JobType) string {
	switch jt.Network {
	case jobtypes.NetworkAllow:
		if l.egress != nil {
			return l.egress.Network()
		}
		return string(jobtypes.NetworkNone) // never started: unavailable
	case "":
		return string(jobtypes.NetworkNone)
	}
	return string(jt.Network)
}

// lease gives c proxy credentials of its own, which open nothing until
// its job begins (openEgress), and points the container's proxy variables
// at them.
func (l *launcher) lease(c *jobContainer, config *container.Config) error {
	if l.egress == nil {
		return fmt.Errorf("job type %s has an allowlist, and this node runs no egress proxy", c.jobType)
	}
	c.lease = l.egress.Lease()
	url := c.lease.ProxyURL()
	config.Env = append(config.Env,
		"HTTP_PROXY="+url, "HTTPS_PROXY="+url, "http_proxy="+url, "https_proxy="+url,
		"NO_PROXY="+noProxy, "no_proxy="+noProxy)
	return nil
}

// bindAddress learns c's address on the egress network, which its
// credentials are good from, once it has started.
func (l *launcher) bindAddress(ctx context.Context, c *jobContainer) error {
	info, err := l.docker.ContainerInspect(ctx, c.id)
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	if info.NetworkSettings != nil {
		if ep := info.NetworkSettings.Networks[l.egress.Network()]; ep != nil {
			if addr, err := netip.ParseAddr(ep.IPAddress); err == nil {
				c.addr = addr
				return nil
			}
		}
	}
	return fmt.Errorf("container %s has no address on %s", c.id, l.egress.Network())
}

// openEgress lets c's credentials reach the hosts req may reach: its job
// type's allowlist, or the request's narrowing of it.
func (c *jobContainer) openEgress(req Request) {
	if c.lease == nil {
		return
	}
	entries := req.JobType.Allow
	if req.NetworkAllow != nil {
		entries = req.NetworkAllow
	}
	hosts := make([]egress.Host, 0, len(entries))
	for _, e := range entries {
		if h, err := egress.ParseRule(e); err == nil { // validated at load and submit
			hosts = append(hosts, h)
		}
	}
	c.lease.Open(c.addr, hosts)
}

// closeEgress withdraws c's credentials and returns what its program
// attempted; nil when c has no lease.
func (c *jobContainer) closeEgress() []jobs.EgressAttempt {
	if c.lease == nil {
		return nil
	}
	attempts := c.lease.Close()
	out := make([]jobs.EgressAttempt, len(attempts))
	for i, a := range attempts {
		out[i] = jobs.EgressAttempt{
			Host: a.Host, Port: a.Port, Result: a.Result, Reason: a.Reason, Rule: a.Rule,
			BytesSent: a.BytesSent, BytesReceived: a.BytesReceived,
		}
	}
	return out
}

// blameEgress names network_error as the cause of a failed program when
// the proxy refused one of its connections: the program most likely
// failed for it.
func blameEgress(res *jobs.Result) {
	if res.Status != jobs.StatusFailed || res.Error == nil || res.Error.Type == jobs.ErrOutputError {
		return
	}
	for _, a := range res.Egress {
		if a.Result == jobs.EgressRefused {
			res.Error.Type = jobs.ErrNetwork
			res.Error.Message += fmt.Sprintf(" (the egress proxy refused %s:%d: %s)", a.Host, a.Port, a.Reason)
			return
		}
	}
}
