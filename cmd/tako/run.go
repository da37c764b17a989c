package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tako-run/tako/config"
)

// version is tako's version; release builds set it with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// errUsage marks a command-line mistake; the usage text has been printed.
var errUsage = errors.New("usage")

// errHelp says -h was given: the help has been printed, and the command
// stops there with success.
var errHelp = errors.New("help")

const usage = `tako runs untrusted Python in hardened, single-use Docker containers.

Usage:
  tako server   [--config FILE] [--host HOST] [--port PORT]   build missing images, then serve the API
  tako setup    [--config FILE]                               build and verify every image the config needs
  tako doctor   [--config FILE]                               check Docker, runtimes, images, database, work dir and config
  tako validate [FILE]                                        check a configuration file
  tako config   [--config FILE]                               print the effective configuration (secrets masked)
  tako status   [--url URL] [--api-key KEY]                   report a running server's health, pools and dead letters
  tako run      [--input F] [--out DIR] [--async] FILE.py     run a Python file on a server, print its output live (tako run -h)
  tako logs     [--url URL] [--api-key KEY] JOB_ID            follow a job's output to its end and exit with its exit code
  tako dev      up|down|status [--config FILE]                start, stop or inspect the local PostgreSQL container
  tako bench    [--url URL] [--concurrency N] [--baseline]     load-test a running server (tako bench -h)
  tako gvisor   register --path RUNSC [--name NAME]           add gVisor's runsc to Docker's runtimes (tako gvisor -h)
  tako webhook  verify --secret whsec_... < request           check a captured webhook request's signature (tako webhook -h)
  tako image    [--binary PATH] [--tag TAG]                   build the tako-server image from a static tako binary
  tako version                                                print tako's version

Configuration comes from built-in defaults, then tako.yaml (--config, $TAKO_CONFIG,
./tako.yaml, the user config dir, /etc/tako/tako.yaml), then TAKO_* variables, then flags.
`

// run is tako's whole program: main only adds the process's signals,
// arguments, environment and standard streams, so tests can call it.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	err := runCommand(ctx, configAfterCommand(args), environ, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// runCommand runs the command args names.
func runCommand(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[1], args[2:]
	if run, ok := commands[cmd]; ok {
		return run(ctx, rest, environ, stdout, stderr)
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "tako %s\n", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// newFlagSet returns the flag set of command name (such as "tako bench"),
// whose -h prints usage and then the flags on stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// commandFunc runs one command with the arguments after its name.
type commandFunc func(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error

// commands are tako's commands by name; version and help are runCommand's.
var commands = map[string]commandFunc{
	"server": runServer,
	"setup":  runSetup,
	"doctor": runDoctor,
	"status": runStatus,
	"dev":    runDev,
	"logs":   runLogs,
	"bench":  runBench,
	"gvisor": runGVisor,
	"image":  runImage,
	"validate": func(_ context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
		return runValidate(args, environ, stdout, stderr)
	},
	"config": func(_ context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
		return runConfig(args, environ, stdout, stderr)
	},
	// run reads --input - from standard input, which run does not pass on.
	"run": func(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
		return runFile(ctx, args, environ, os.Stdin, stdout, stderr)
	},
	// webhook verify reads the request from standard input, which run
	// does not pass on; it also takes --request FILE.
	"webhook": func(_ context.Context, args []string, _ []string, stdout, stderr io.Writer) error {
		return runWebhook(args, os.Stdin, stdout, stderr)
	},
}

// configAfterCommand moves a --config (or -c) given before the command,
// as Tako VM's CLI takes it (tako-vm --config FILE server), to after it,
// where tako's commands read it.
func configAfterCommand(args []string) []string {
	if len(args) < 3 {
		return args
	}
	n := 0 // how many arguments the flag takes up
	switch a := args[1]; {
	case a == "--config" || a == "-c":
		n = 2
	case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-c="):
		n = 1
	default:
		return args
	}
	if len(args) < 2+n {
		return args
	}
	out := []string{args[0], args[1+n]}
	out = append(out, args[1:1+n]...)
	return append(out, args[2+n:]...)
}

// commonFlags are the flags every configuration-reading command takes.
type commonFlags struct {
	fs     *flag.FlagSet
	config string
	set    map[string]string // config key -> value, for flags the user gave
}

func newFlags(name string, stderr io.Writer) *commonFlags {
	f := &commonFlags{fs: flag.NewFlagSet("tako "+name, flag.ContinueOnError), set: map[string]string{}}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.config, "config", "", "configuration file (default: $TAKO_CONFIG, ./tako.yaml, ...)")
	f.fs.StringVar(&f.config, "c", "", "shorthand for --config")
	return f
}

// key declares a flag that overrides configuration key.
func (f *commonFlags) key(name, key, help string) {
	f.fs.Func(name, help, func(v string) error {
		f.set[key] = v
		return nil
	})
}

func (f *commonFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp // printed; the command must not run
		}
		return errUsage
	}
	return nil
}

// load reads the configuration with the flags' overrides applied.
func (f *commonFlags) load(environ []string) (*config.Config, error) {
	return config.Load(config.LoadOptions{File: f.config, Environ: environ, Flags: f.set})
}

// runValidate is `tako validate [FILE]`: it loads the configuration, the
// file named or the one --config and the search find, and prints its job
// types.
func runValidate(args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("validate", environ, stderr)
	if err := c.parse(args); err != nil {
		return err
	}
	fs := c.flags.fs
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: tako validate [FILE]")
		return errUsage
	}
	if fs.NArg() == 1 {
		c.flags.config = fs.Arg(0)
	}
	if err := c.load(); err != nil {
		return err
	}
	source := c.cfg.Path
	if source == "" {
		source = "built-in defaults (no tako.yaml found)"
	}
	names := c.reg.Names()
	fmt.Fprintf(stdout, "%s: ok, %d job types: %s\n", source, len(names), strings.Join(names, ", "))
	return nil
}

// runConfig is `tako config`: it prints the effective configuration,
// secrets masked.
func runConfig(args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("config", environ, stderr)
	if err := c.open(args); err != nil {
		return err
	}
	if c.cfg.Path != "" {
		fmt.Fprintf(stdout, "# from %s, TAKO_* variables and built-in defaults\n", c.cfg.Path)
	} else {
		fmt.Fprintln(stdout, "# no tako.yaml found: built-in defaults and TAKO_* variables")
	}
	return c.cfg.WriteYAML(stdout)
}

// newLogger returns the logger cfg asks for: JSON, or text when format is
// auto and w is a terminal.
func newLogger(cfg config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "auto" || format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// workDir returns the configured work directory, or tako's directory under
// the user's state directory ($XDG_STATE_HOME, else ~/.local/state).
func workDir(cfg *config.Config, environ []string) (string, error) {
	if cfg.Runner.WorkDir != "" {
		return filepath.Abs(cfg.Runner.WorkDir)
	}
	if d := lookup(environ, "XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tako"), nil
	}
	home := lookup(environ, "HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no work directory: set runner.work_dir: %w", err)
		}
	}
	return filepath.Join(home, ".local", "state", "tako"), nil
}

// lookup returns the value of key in environ ("K=V" entries), or "".
func lookup(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}
