package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/tako-run/tako/jobs/postgres/localdb"
)

// runSetup is `tako setup`: it builds, or finds, every image the
// configuration needs and prints one line per image.
func runSetup(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("setup", environ, stderr)
	if err := c.open(args); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	defer c.close()
	cfg, reg, dc := c.cfg, c.reg, c.docker

	began := time.Now()
	b := newBuilder(dc, cfg, c.work, nil, c.logger, stdout)
	set, err := ensureImages(ctx, b, reg)
	if err != nil {
		return err
	}
	if cfg.Database.URL == "" {
		ref, err := localdb.EnsureImage(ctx, b, cfg.Database.AutoStart.Image)
		if err != nil {
			return fmt.Errorf("database image: %w", err)
		}
		fmt.Fprintf(stdout, "  %-20s %s\n", "(database)", ref)
	}
	names := reg.Names()
	sort.Strings(names)
	for _, name := range names {
		if ref, ok := set.refs[name]; ok {
			fmt.Fprintf(stdout, "  %-20s %s\n", name, ref)
		} else {
			fmt.Fprintf(stdout, "  %-20s FAILED: %s\n", name, set.errors[name])
		}
	}
	if len(set.errors) > 0 {
		return fmt.Errorf("setup failed for %d of %d job types", len(set.errors), len(names))
	}
	info, err := dc.Info(ctx)
	if err == nil {
		if _, ok := info.Runtimes["runsc"]; !ok {
			fmt.Fprintln(stdout, "warning: gVisor (runsc) is not installed: permissive job types will run under runc; strict job types are unavailable")
		}
	}
	fmt.Fprintf(stdout, "setup done in %s\n", time.Since(began).Round(100*time.Millisecond))
	return nil
}
