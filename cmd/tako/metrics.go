package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner"
)

// queueSampler is the queue and database side of the sampler.
type queueSampler interface {
	DatabaseHealth(ctx context.Context) error
	QueueDepths(ctx context.Context) (map[string]int, error)
}

// cacheSampler reports the ad-hoc requirement images.
type cacheSampler interface {
	RequirementsCache(ctx context.Context) (int, int64, error)
}

// startSampling publishes the configured limits, lets scrapes read the
// pools, and refreshes the gauges that need I/O every
// metrics.sample_interval until the returned stop is called.
func startSampling(ctx context.Context, cfg *config.Config, m *metrics.Metrics, reg *jobtypes.Registry, run *runner.Runner, q queueSampler, cache cacheSampler, logger *slog.Logger) (stop func()) {
	names := reg.Names()
	for _, name := range names {
		m.AddJobType(name)
	}
	m.SetLimits(cfg.Queue.MaxPending, cfg.Runner.MaxConcurrent)
	m.SetPoolSource(run.PoolSamples)
	m.SetRemovalSource(run.RemovalsPending)

	logger = logger.With("component", "metrics")
	interval := cfg.Metrics.SampleInterval.Std()
	probe := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		docker := run.Health(ctx).DockerAvailable
		dbErr := q.DatabaseHealth(ctx)
		m.SetAvailability(docker, dbErr == nil)
		if dbErr == nil {
			if depth, err := q.QueueDepths(ctx); err == nil {
				m.SetQueueDepth(names, depth)
			} else {
				logger.Debug("sample queue depth", "error", err)
			}
		}
		if docker {
			if n, bytes, err := cache.RequirementsCache(ctx); err == nil {
				m.SetRequirementsCache(n, bytes)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		metrics.Sample(ctx, interval, probe)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
