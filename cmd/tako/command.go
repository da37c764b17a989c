package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/docker/docker/client"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobtypes"
)

// command is the opening the configuration-reading commands share, so that
// each command's code reads as what it does. A command declares its flags
// (newCommand, then flags.key), then takes the steps it needs, in order:
// open (parse and load), then connect (findWorkDir and dialDocker); close
// releases what dialDocker made. Each step returns its error as is: the
// messages name the key, the file or the engine at fault already.
type command struct {
	flags   *commonFlags
	environ []string
	stderr  io.Writer

	cfg    *config.Config     // set by load
	reg    *jobtypes.Registry // set by load
	logger *slog.Logger       // set by load; writes to stderr
	work   string             // set by findWorkDir
	docker *client.Client     // set by dialDocker; nil after close
}

// newCommand returns tako name's opening, its flags declared (--config);
// environ and stderr are the process's.
func newCommand(name string, environ []string, stderr io.Writer) *command {
	return &command{flags: newFlags(name, stderr), environ: environ, stderr: stderr}
}

// open parses args and loads the configuration they select: parse, then
// load.
func (c *command) open(args []string) error {
	if err := c.parse(args); err != nil {
		return err
	}
	return c.load()
}

// parse reads args into the flags. It returns errUsage for a bad command
// line; -h prints the help and returns nil, as commonFlags.parse does.
func (c *command) parse(args []string) error {
	return c.flags.parse(args)
}

// load reads the configuration with the flags' overrides applied, builds
// its job types and the logger it asks for, on stderr.
func (c *command) load() error {
	cfg, err := c.flags.load(c.environ)
	if err != nil {
		return err
	}
	reg, err := cfg.Registry()
	if err != nil {
		return err
	}
	c.cfg, c.reg, c.logger = cfg, reg, newLogger(cfg.Log, c.stderr)
	return nil
}

// connect finds the work directory and connects to the Docker engine:
// findWorkDir, then dialDocker. Once it has returned nil, close must be
// called.
func (c *command) connect(ctx context.Context) error {
	if err := c.findWorkDir(); err != nil {
		return err
	}
	return c.dialDocker(ctx)
}

// findWorkDir sets work: the configured work directory, or tako's under
// the user's state directory (see workDir).
func (c *command) findWorkDir() error {
	work, err := workDir(c.cfg, c.environ)
	if err != nil {
		return err
	}
	c.work = work
	return nil
}

// dialDocker connects to the Docker engine DOCKER_HOST names, which must
// answer (see dockerClient). Once it has returned nil, close must be
// called.
func (c *command) dialDocker(ctx context.Context) error {
	dc, err := dockerClient(ctx, c.environ)
	if err != nil {
		return err
	}
	c.docker = dc
	return nil
}

// close releases the Docker client dialDocker made. It is idempotent.
func (c *command) close() {
	if c.docker != nil {
		c.docker.Close()
		c.docker = nil
	}
}
