package config

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

// Registry returns the job types the configuration declares, each with its
// unset fields filled in: limits, pool and network from DefaultJobType, the
// security mode from the global security_mode. The built-in "default" job
// type is added when the file does not declare one. Call it on a Config
// that Load returned (or that passed Validate); the only error is an
// invalid job type name.
func (c *Config) Registry() (*jobtypes.Registry, error) {
	return jobtypes.NewRegistry(c.jobTypes())
}

// jobTypes resolves every declared job type plus the built-in default,
// sorted by name.
func (c *Config) jobTypes() []jobtypes.JobType {
	names := slices.Collect(maps.Keys(c.JobTypes))
	if _, ok := c.JobTypes[jobtypes.DefaultName]; !ok {
		names = append(names, jobtypes.DefaultName)
	}
	sort.Strings(names)
	out := make([]jobtypes.JobType, 0, len(names))
	for _, name := range names {
		out = append(out, c.resolve(name, c.JobTypes[name]))
	}
	return out
}

// resolve fills the unset fields of one job type.
func (c *Config) resolve(name string, jc JobTypeConfig) jobtypes.JobType {
	jt := DefaultJobType()
	jt.Name = name
	jt.Image = jc.Image
	jt.CallbackURL = jc.CallbackURL
	// Copies, so the registry shares nothing with the Config; empty is nil
	// however it was written.
	if len(jc.Env) > 0 {
		jt.Env = maps.Clone(jc.Env)
	}
	jt.Preload = cloneList(jc.Preload)
	jt.Requirements = cloneList(jc.Requirements)
	jt.SystemPackages = cloneList(jc.SystemPackages)

	jt.AllowSourceBuilds = c.Requirements.AllowSourceBuilds
	if jc.AllowSourceBuilds != nil {
		jt.AllowSourceBuilds = *jc.AllowSourceBuilds
	}
	jt.Concurrency = c.Runner.MaxConcurrent
	setIf(&jt.Concurrency, jc.Concurrency)
	jt.SecurityMode = jobtypes.SecurityMode(c.SecurityMode)
	if jc.SecurityMode != "" {
		jt.SecurityMode = jobtypes.SecurityMode(jc.SecurityMode)
	}
	switch {
	case jc.Network.Mode != "":
		jt.Network = jobtypes.Network(jc.Network.Mode)
	case jc.Network.Allow != nil:
		jt.Network, jt.Allow = jobtypes.NetworkAllow, cloneList(jc.Network.Allow)
	}
	jt.Runtime = jobtypes.Runtime(jc.Runtime)

	l := jc.Limits
	setIf(&jt.Limits.CPUs, l.CPUs)
	setIf(&jt.Limits.FileSize, int64(l.FileSize))
	setIf(&jt.Limits.Memory, int64(l.Memory))
	setIf(&jt.Limits.NoFile, int64(l.NoFile))
	setIf(&jt.Limits.Pids, int64(l.Pids))
	setIf(&jt.Limits.Tmp, int64(l.Tmp))
	setIf(&jt.Limits.Timeout, time.Duration(l.Timeout))
	// An inherited timeout never exceeds the global ceiling; one written in
	// the file that does is a Validate error instead.
	if maxTimeout := time.Duration(c.Limits.MaxTimeout); l.Timeout == 0 && maxTimeout > 0 && jt.Limits.Timeout > maxTimeout {
		jt.Limits.Timeout = maxTimeout
	}

	// Likewise an inherited pool bound gives way to an explicit one: a job
	// type that sets only max: 1 gets min 1, not min 2 > max.
	p := jc.Pool
	switch {
	case p.Min != nil && p.Max != nil:
		jt.Pool.Min, jt.Pool.Max = *p.Min, *p.Max
	case p.Min != nil:
		jt.Pool.Min, jt.Pool.Max = *p.Min, max(*p.Min, jt.Pool.Max)
	case p.Max != nil:
		jt.Pool.Min, jt.Pool.Max = min(jt.Pool.Min, *p.Max), *p.Max
	}
	if p.IdleTTL != nil {
		jt.Pool.IdleTTL = time.Duration(*p.IdleTTL)
	}
	return jt
}

// setIf overwrites *dst with v unless v is zero, which means "inherit".
func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

func cloneList(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
