package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobs/postgres"
)

// devUsage is the help text of tako dev.
const devUsage = `usage: tako dev up     [--config FILE]   start the local PostgreSQL container and print its URL
       tako dev down   [--config FILE]   stop it; its data stays in its volume
       tako dev status [--config FILE]   say whether it exists, runs and answers

The container is the one tako server starts when database.url is empty:
database.auto_start's container, port, volume and image, with its password
kept in the work directory. dev up builds its image if needed.
`

// devPingTimeout bounds dev status's connection to the database.
const devPingTimeout = 10 * time.Second

// runDev manages the PostgreSQL container tako server runs when
// database.url is empty, for local development.
func runDev(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, devUsage)
		return errUsage
	}
	cmd := args[0]
	switch cmd {
	case "up", "down", "status":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, devUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown dev command %q\n\n%s", cmd, devUsage)
		return errUsage
	}
	c := newCommand("dev "+cmd, environ, stderr)
	fs := c.flags.fs
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), devUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	// Not c.parse: -h must print the help and do nothing else.
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (tako dev %s takes only --config)", errUsage, fs.Arg(0), cmd)
	}
	if err := c.load(); err != nil {
		return err
	}
	if err := c.findWorkDir(); err != nil {
		return err
	}
	m := newManagedDatabase(c.cfg, c.work)
	if c.cfg.Database.URL != "" {
		fmt.Fprintf(stdout, "note: database.url is set, so this configuration does not use the managed database; tako dev %s acts on the %s container all the same\n", cmd, m.Container)
	}
	if cmd == "status" {
		return devStatus(ctx, environ, m, stdout)
	}
	if err := c.dialDocker(ctx); err != nil {
		return err
	}
	defer c.close()
	if cmd == "up" {
		return devUp(ctx, c, m, stdout)
	}
	return devDown(ctx, c.docker, m, stdout)
}

// devUp starts the managed database the way tako server does, building its
// image if needed with progress on stdout, and prints its URL, password
// masked, and where the password is kept. Log lines go to c's logger.
func devUp(ctx context.Context, c *command, m managedDatabase, stdout io.Writer) error {
	b := newBuilder(c.docker, c.cfg, c.work, nil, c.logger, stdout)
	fmt.Fprintf(stdout, "==> database: starting the %s container on 127.0.0.1:%d (volume %s)\n", m.Container, m.Port, m.Volume)
	dbURL, err := autoStartDatabase(ctx, c.docker, b, m, c.logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database ready: %s\n", maskPassword(dbURL))
	fmt.Fprintf(stdout, "password file:  %s\n", m.PasswordFile)
	return nil
}

// devDown stops the managed database's container and keeps it and its
// volume, so that dev up or tako server starts it again with its data. A
// container that is stopped or was never created is not an error.
func devDown(ctx context.Context, dc *client.Client, m managedDatabase, stdout io.Writer) error {
	info, err := dc.ContainerInspect(ctx, m.Container)
	switch {
	case cerrdefs.IsNotFound(err):
		fmt.Fprintf(stdout, "the %s container is not created: nothing to stop\n", m.Container)
		return nil
	case err != nil:
		return fmt.Errorf("inspect the %s container: %w", m.Container, err)
	case info.State == nil || !info.State.Running:
		fmt.Fprintf(stdout, "the %s container is already stopped\n", m.Container)
		return nil
	}
	fmt.Fprintf(stdout, "==> stopping the %s container\n", m.Container)
	if err := dc.ContainerStop(ctx, m.Container, container.StopOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop the %s container: %w", m.Container, err)
	}
	fmt.Fprintf(stdout, "stopped the %s container; its data stays in volume %s (tako dev up starts it again)\n", m.Container, m.Volume)
	return nil
}

// devStatus prints the managed database's container, URL (password
// masked), password file and state: not created, stopped, or running and
// whether it accepts tako's credentials. It fails only when Docker does not
// answer or the container cannot be inspected.
func devStatus(ctx context.Context, environ []string, m managedDatabase, stdout io.Writer) error {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(stdout, "%-14s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	line("container", "%s", m.Container)
	line("volume", "%s", m.Volume)
	line("password file", "%s", m.PasswordFile)
	dc, err := dockerClient(ctx, environ)
	if err != nil {
		line("url", "%s", maskPassword(m.url(m.Port, "")))
		line("state", "unknown: Docker does not answer")
		return err
	}
	defer dc.Close()
	info, err := dc.ContainerInspect(ctx, m.Container)
	if cerrdefs.IsNotFound(err) {
		line("url", "%s", maskPassword(m.url(m.Port, "")))
		line("state", "not created (tako dev up creates it)")
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect the %s container: %w", m.Container, err)
	}
	// A container made with another port keeps it: tako reuses it as is.
	port := m.Port
	if info.HostConfig != nil {
		for _, b := range info.HostConfig.PortBindings["5432/tcp"] {
			if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
				port = p
				break
			}
		}
	}
	line("url", "%s", maskPassword(m.url(port, "")))
	if info.State == nil || !info.State.Running {
		line("state", "stopped (tako dev up starts it)")
		return nil
	}
	if why := devPing(ctx, m, port); why != "" {
		line("state", "running (not reachable: %s)", why)
		return nil
	}
	line("state", "running (reachable)")
	return nil
}

// devPing connects to the managed database on port with the password tako
// keeps for it. It returns "" when the server accepts the connection, and
// otherwise why not. It never creates the password file.
func devPing(ctx context.Context, m managedDatabase, port int) string {
	b, err := os.ReadFile(m.PasswordFile)
	if errors.Is(err, os.ErrNotExist) {
		return "no password file: the container was not started by tako with this work directory"
	}
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, devPingTimeout)
	defer cancel()
	pool, err := postgres.Connect(ctx, m.url(port, strings.TrimSpace(string(b))), 1)
	if err != nil {
		return err.Error() // Connect's errors leave the password out
	}
	pool.Close()
	return ""
}

// maskPassword returns the URL s with the password in it replaced by
// "***", for printing; s unchanged when it has none.
func maskPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	// url.URL would escape the asterisks: splice them in after the user.
	u.User = url.User(u.User.Username())
	masked := u.String()
	prefix := u.Scheme + "://" + u.User.String()
	return prefix + ":***" + strings.TrimPrefix(masked, prefix)
}
