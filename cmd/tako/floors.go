package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tako-run/tako/bench"
	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/runner"
)

// floorOpener opens the probes of tako bench --floors: the host's python3,
// a runner.FloorProbe on the Docker engine, in tako's work directory, and
// a scratch schema on tako's database. It satisfies bench.FloorOpener.
type floorOpener struct {
	c           *command // loaded, its work directory found and Docker dialled
	databaseURL string
}

// newFloorOpener loads the configuration c's --config names, finds the
// database (databaseURL, else database.url) and the work directory, and
// connects to the Docker engine DOCKER_HOST names; c.close releases the
// engine's client. Each error names what is missing and the flag or key
// that gives it.
func newFloorOpener(ctx context.Context, c *command, databaseURL string) (*floorOpener, error) {
	databaseURL, err := benchDatabaseURL(c, databaseURL, "--floors", "tako's database for the store floor")
	if err != nil {
		return nil, err
	}
	if err := c.findWorkDir(); err != nil {
		return nil, fmt.Errorf("--floors: %w", err)
	}
	if err := c.dialDocker(ctx); err != nil {
		return nil, fmt.Errorf("--floors needs the Docker engine: %w", err)
	}
	return &floorOpener{c: c, databaseURL: databaseURL}, nil
}

// benchDatabaseURL is the database a tako bench option (flag, which needs
// it for what) uses: databaseURL, --database-url, when given, else
// database.url of the configuration c's --config loads. Its errors name
// the flag and the key that give it.
func benchDatabaseURL(c *command, databaseURL, flag, what string) (string, error) {
	if err := c.load(); err != nil {
		return "", fmt.Errorf("%s reads tako's configuration (--config): %w", flag, err)
	}
	if databaseURL == "" {
		databaseURL = c.cfg.Database.URL
	}
	if databaseURL == "" {
		source := c.cfg.Path
		if source == "" {
			source = "built-in defaults: no tako.yaml found"
		}
		return "", fmt.Errorf("%w: %s needs %s: pass --database-url, or set database.url in the configuration (--config; %s)", errUsage, flag, what, source)
	}
	return databaseURL, nil
}

// OpenFloors implements bench.FloorOpener: it gives target's containers the
// configuration of the job type of that name in tako's configuration (the
// engine and bootstrap floors' containers alike), starts the trigger
// floor's container and creates the scratch schema.
func (o *floorOpener) OpenFloors(ctx context.Context, target bench.FloorTarget) (_ bench.FloorProbes, _ func(), err error) {
	cfg := o.c.cfg
	jt, ok := o.c.reg.Get(target.JobType)
	if !ok {
		source := cfg.Path
		if source == "" {
			source = "built-in defaults: no tako.yaml found"
		}
		return bench.FloorProbes{}, nil, fmt.Errorf("the configuration (--config; %s) has no job type %q: the floors run its containers as tako does, with its limits", source, target.JobType)
	}
	uidFirst, uidCount, _ := config.ParseUIDRange(cfg.Runner.UIDRange) // validated
	probe, err := runner.NewFloorProbe(o.c.docker, runner.FloorOptions{
		WorkDir:       o.c.work,
		UIDs:          runner.UIDRange{First: uidFirst, Count: uidCount},
		GVisorRuntime: cfg.Runner.GVisorRuntime,
		Image:         target.Image,
		JobType:       jt,
		Runtime:       target.Runtime,
	}, o.c.logger)
	if err != nil {
		return bench.FloorProbes{}, nil, fmt.Errorf("%w (the floors run containers as tako server does: run tako bench as its user)", err)
	}
	var closers []func()
	release := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	closers = append(closers, probe.Close)
	trigger, err := probe.StartTrigger(ctx)
	if err != nil {
		return bench.FloorProbes{}, nil, err
	}
	closers = append(closers, trigger.Close)
	scratch, err := postgres.OpenScratch(ctx, o.databaseURL)
	if err != nil {
		return bench.FloorProbes{}, nil, fmt.Errorf("store floor: %w", err)
	}
	logger := o.c.logger
	closers = append(closers, func() { dropScratch(scratch, logger) })
	return bench.FloorProbes{
		Host:      bench.NewHostInterpreter(),
		Trigger:   trigger,
		Store:     bench.NewStoreFloor(scratch.Store, jt.Name),
		Engine:    probe,
		Bootstrap: probe,
	}, release, nil
}

// dropScratch drops the store floor's scratch schema, even after an
// interrupt; a failure is logged, the measurement stands.
func dropScratch(s *postgres.Scratch, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Drop(ctx); err != nil {
		logger.Warn("drop the store floor's scratch schema", "error", err)
	}
}
