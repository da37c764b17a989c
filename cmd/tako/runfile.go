package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tako-run/tako/client"
)

// The exit codes of tako run and tako logs besides the program's own.
const (
	exitUsage       = 2   // a mistake on the command line
	exitTakoFailure = 3   // tako could not run the program to its end
	exitInterrupted = 130 // Ctrl-C (128 + SIGINT), as shells report it
)

// exitCodes is the part of tako run's and tako logs's help that lists
// their exit codes.
const exitCodes = `Exit codes: the program's own exit code; 2 for a mistake on the command line
(a bad flag, a file that cannot be read); 3 when tako could not run the
program to its end (the server could not be reached or refused the job, or
the job timed out, ran out of memory or was cancelled); 130 when
interrupted with Ctrl-C. A program that exits with 2 or 3 itself is not
told apart.
`

// runFileUsage is the help text of tako run.
const runFileUsage = `usage: tako run [flags] FILE.py

Runs FILE.py on a tako server and prints its output as it comes: the
program's stdout on stdout, its stderr on stderr. Then it saves the job's
artifacts (and result.json) into --out DIR when given, prints result.json
when the program wrote one, and exits with the program's exit code. On a
terminal a progress line on stderr shows the job's state. Ctrl-C cancels
the job. With --async it only queues the job and prints its id; tako logs
ID follows it.

` + exitCodes + `
Flags:
`

// logsUsage is the help text of tako logs.
const logsUsage = `usage: tako logs [--url URL] [--api-key KEY] JOB_ID

Follows job JOB_ID's live output to its end, the program's stdout on stdout
and its stderr on stderr (a job that has ended is replayed), and exits with
the program's exit code. Ctrl-C stops following; the job goes on.

` + exitCodes + `
Flags:
`

// exitError ends the process with code. err, when not nil, is what went
// wrong, printed by main; a program's own exit code has none.
type exitError struct {
	code int
	err  error
}

// Error returns err's text, or the exit code when there is none.
func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

// Unwrap returns err.
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit code for run's error err: 0 for nil,
// an *exitError's code, 1 for any other error. show says whether main
// should print err.
func exitCode(err error) (code int, show bool) {
	var ee *exitError
	switch {
	case err == nil:
		return 0, false
	case errors.As(err, &ee):
		return ee.code, ee.err != nil
	default:
		return 1, true
	}
}

// usageExit turns a command-line error into the exit of usage mistakes.
func usageExit(err error) error {
	if err == nil || errors.Is(err, errHelp) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

// takoFailure is an error of tako's own while running job id (or before
// there is one, when id is empty), the exit of exitTakoFailure.
func takoFailure(format string, a ...any) error {
	return &exitError{code: exitTakoFailure, err: fmt.Errorf(format, a...)}
}

// runFileConfig is tako run's checked command line.
type runFileConfig struct {
	server serverFlags
	file   string         // the program's path
	req    client.Request // what is sent
	out    string         // --out DIR, "" for none
	async  bool
}

// runFile is `tako run FILE.py`: it runs the program on a server and
// follows it to its end. stdin is read for --input -.
func runFile(ctx context.Context, args []string, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := parseRunFileFlags(args, environ, stdin, stderr)
	if err != nil {
		return usageExit(err)
	}
	c, err := cfg.server.newClient("", 0)
	if err != nil {
		return usageExit(err)
	}
	// An idempotency key lets the client retry the submit safely when the
	// connection breaks: the server answers a repeat with the same job.
	job, err := c.Submit(ctx, cfg.req, idempotencyKey())
	switch {
	case ctx.Err() != nil:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted while submitting %s", cfg.file)}
	case err != nil:
		return takoFailure("submit %s to %s: %w", cfg.file, cfg.server.URL, err)
	}
	if cfg.async {
		fmt.Fprintln(stdout, job.JobID)
		return nil
	}
	x, err := followJob(ctx, c, job.JobID, stdout, stderr)
	if ctx.Err() != nil {
		return interrupted(ctx, c, job.JobID)
	}
	if err != nil {
		return err
	}
	if cfg.out != "" {
		if err := saveArtifacts(ctx, c, x, cfg.out, stderr); err != nil {
			if ctx.Err() != nil {
				return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted while saving job %s's artifacts: %w", x.JobID, err)}
			}
			return takoFailure("job %s: %w", x.JobID, err)
		}
	}
	if err := printResult(stdout, x.Output); err != nil {
		return takoFailure("job %s: print result.json: %w", x.JobID, err)
	}
	return jobExit(x)
}

// runLogs is `tako logs JOB_ID`: it follows a job's output to its end and
// exits with the program's exit code.
func runLogs(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tako logs", logsUsage, stderr)
	sf := addServerFlags(fs, environ)
	pos, err := parseInterspersed(fs, args)
	switch {
	case err != nil:
		return usageExit(err)
	case len(pos) != 1:
		return usageExit(fmt.Errorf("%w: tako logs takes one JOB_ID, not %d arguments", errUsage, len(pos)))
	}
	if err := sf.check(); err != nil {
		return usageExit(err)
	}
	c, err := sf.newClient("", 0)
	if err != nil {
		return usageExit(err)
	}
	x, err := followJob(ctx, c, pos[0], stdout, stderr)
	if ctx.Err() != nil {
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted; job %s goes on", pos[0])}
	}
	if err != nil {
		return err
	}
	return jobExit(x)
}

// parseRunFileFlags reads and checks tako run's arguments, and reads the
// files they name. Every error names the flag or file at fault and wraps
// errUsage; -h prints the help and returns errHelp.
func parseRunFileFlags(args []string, environ []string, stdin io.Reader, stderr io.Writer) (runFileConfig, error) {
	var (
		cfg                 runFileConfig
		input, requirements string
		timeout             time.Duration
	)
	fs := newFlagSet("tako run", runFileUsage, stderr)
	sf := addServerFlags(fs, environ)
	fs.StringVar(&input, "input", "", "the program's /input/data.json: a `FILE` holding a JSON object, - for standard input")
	fs.StringVar(&cfg.req.JobType, "job-type", "", "job type to run in (default: the server's, default)")
	fs.StringVar(&requirements, "requirements", "", "ad-hoc pip requirements: a requirements `FILE`, or a comma-separated list such as numpy,pandas>=2")
	fs.DurationVar(&timeout, "timeout", 0, "the job's time limit, such as 30s, in whole seconds (default: the job type's)")
	fs.StringVar(&cfg.out, "out", "", "save the job's artifacts and result.json into `DIR` (created if missing)")
	fs.BoolVar(&cfg.async, "async", false, "only queue the job and print its id (follow it with tako logs ID)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cfg, err
	}
	bad := func(format string, a ...any) (runFileConfig, error) {
		return cfg, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case len(pos) == 0:
		return bad("tako run needs the Python FILE to run (tako run -h for help)")
	case len(pos) > 1:
		return bad("tako run takes one FILE, not %d arguments: %q", len(pos), pos)
	case timeout < 0:
		return bad("--timeout must be positive, not %s", timeout)
	case cfg.async && cfg.out != "":
		return bad("--out cannot be used with --async (tako logs does not download artifacts)")
	}
	if err := sf.check(); err != nil {
		return cfg, err
	}
	cfg.server = *sf
	cfg.file = pos[0]
	code, err := os.ReadFile(cfg.file)
	if err != nil {
		return bad("read the program: %v", err)
	}
	if strings.TrimSpace(string(code)) == "" {
		return bad("the program %s is empty", cfg.file)
	}
	cfg.req.Code = string(code)
	if timeout > 0 {
		cfg.req.Timeout = int(math.Ceil(timeout.Seconds()))
	}
	if input != "" {
		if cfg.req.InputData, err = readInput(input, stdin); err != nil {
			return cfg, err
		}
	}
	if requirements != "" {
		if cfg.req.Requirements, err = readRequirements(requirements); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// parseInterspersed parses fs's flags wherever they are among args, so
// both `tako run --out d f.py` and `tako run f.py --out d` work, and
// returns the other arguments. Everything after "--" is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// The flag package stops at the first argument, and after "--".
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// readInput reads --input: the JSON object in file, or on stdin for "-".
func readInput(file string, stdin io.Reader) (json.RawMessage, error) {
	var (
		b   []byte
		err error
	)
	name := file
	if file == "-" {
		name = "standard input"
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: --input: %v", errUsage, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("it is null")
		}
		return nil, fmt.Errorf("%w: --input: %s does not hold a JSON object: %v", errUsage, name, err)
	}
	return json.RawMessage(b), nil
}

// readRequirements reads --requirements: a requirements file when value
// names one (a line each, # comments and pip options not allowed), else
// a comma-separated list.
func readRequirements(value string) ([]string, error) {
	var reqs []string
	fi, err := os.Stat(value)
	switch {
	case err == nil && fi.Mode().IsRegular():
		f, err := os.Open(value)
		if err != nil {
			return nil, fmt.Errorf("%w: --requirements: %v", errUsage, err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line, _, _ := strings.Cut(sc.Text(), "#")
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "-") {
				return nil, fmt.Errorf("%w: --requirements: %s line %d: pip options such as %q are not taken, only requirements", errUsage, value, n, line)
			}
			if line != "" {
				reqs = append(reqs, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: --requirements: read %s: %v", errUsage, value, err)
		}
		if len(reqs) == 0 {
			return nil, fmt.Errorf("%w: --requirements: %s lists no requirement", errUsage, value)
		}
		return reqs, nil
	case err == nil:
		return nil, fmt.Errorf("%w: --requirements: %s is not a regular file", errUsage, value)
	case strings.ContainsAny(value, `/\`) || strings.HasSuffix(value, ".txt"):
		// Meant as a file, surely, not as a requirement.
		return nil, fmt.Errorf("%w: --requirements: %v", errUsage, err)
	}
	for i, r := range strings.Split(value, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			return nil, fmt.Errorf("%w: --requirements: requirement %d of %q is empty", errUsage, i+1, value)
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// idempotencyKey returns a fresh random idempotency key.
func idempotencyKey() string {
	return "tako-run-" + rand.Text()
}

// followJob prints job id's live output, the program's stdout on stdout
// and its stderr on stderr, with its progress on stderr, and returns the
// job's record once it has ended. Its errors are tako failures; when ctx
// ends, it returns ctx's error.
func followJob(ctx context.Context, c *client.Client, id string, stdout, stderr io.Writer) (*client.Execution, error) {
	p := newProgress(stderr, id, isTerminal(stderr))
	defer p.close()
	var (
		x      *client.Execution
		status client.Status
	)
	for ev, err := range c.Stream(ctx, id, "") {
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, takoFailure("follow job %s: %w", id, err)
		}
		switch ev.Type {
		case client.EventQueued:
			p.set("queued")
		case client.EventStarted:
			p.set("running")
		case client.EventStdout:
			p.print(stdout, ev.Text)
		case client.EventStderr:
			p.print(stderr, ev.Text)
		case client.EventTruncated:
			var d struct {
				Stream string `json:"stream"`
			}
			json.Unmarshal(ev.Data, &d)
			p.note(fmt.Sprintf("tako: job %s: %s reached its size limit; the rest is dropped", id, d.Stream))
		case client.EventResult:
			x = ev.Result
		case client.EventDone:
			status = ev.Status
		}
	}
	if x == nil || !x.Status.Terminal() {
		// No usable result event: ask for the record.
		var err error
		if x, err = c.Wait(ctx, id, time.Minute); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, takoFailure("job %s ended (%s) but its record could not be read: %w", id, status, err)
		}
	}
	p.close()
	return x, nil
}

// interrupted cancels job id after Ctrl-C and returns the exit of an
// interruption, saying whether the cancel took.
func interrupted(ctx context.Context, c *client.Client, id string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := c.Cancel(cctx, id)
	var apiErr *client.APIError
	switch {
	case err == nil:
		err = fmt.Errorf("interrupted: job %s cancelled", id)
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		err = fmt.Errorf("interrupted: job %s had already ended", id)
	default:
		err = fmt.Errorf("interrupted, but job %s could not be cancelled: %w", id, err)
	}
	return &exitError{code: exitInterrupted, err: err}
}

// jobExit is the one place that turns an ended job into tako run's and
// tako logs's exit: nil when the program succeeded, its exit code when it
// ran and failed, and a tako failure when it did not run to its end
// (timeout, out of memory, cancelled, tako's own error).
func jobExit(x *client.Execution) error {
	if x.ExitCode != nil && (x.Status == client.StatusSucceeded || x.Status == client.StatusFailed) {
		switch code := *x.ExitCode; {
		case code == 0 && x.Status == client.StatusSucceeded:
			return nil
		case code > 0 && code < 256:
			return &exitError{code: code}
		}
	}
	msg := fmt.Sprintf("job %s %s", x.JobID, x.Status)
	if x.ExitCode != nil {
		msg += fmt.Sprintf(" (exit code %d)", *x.ExitCode)
	}
	if x.Error != nil {
		msg += ": " + x.Error.Message
	}
	return &exitError{code: exitTakoFailure, err: errors.New(msg)}
}

// saveArtifacts downloads x's artifacts into dir, each checked against its
// SHA-256, and writes its result.json there when it has one.
func saveArtifacts(ctx context.Context, c *client.Client, x *client.Execution, dir string, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	for _, a := range x.Artifacts {
		if err := saveArtifact(ctx, c, x.JobID, a, dir); err != nil {
			return fmt.Errorf("save artifact %q: %w", a.Name, err)
		}
	}
	if hasResult(x.Output) {
		if err := writeChecked(dir, "result.json", bytes.NewReader(x.Output), ""); err != nil {
			return fmt.Errorf("save result.json: %w", err)
		}
	}
	if x.ArtifactsTruncated {
		fmt.Fprintf(stderr, "tako: job %s left more artifacts than the server keeps; some were dropped\n", x.JobID)
	}
	return nil
}

// saveArtifact downloads artifact a of job id into dir.
func saveArtifact(ctx context.Context, c *client.Client, id string, a client.Artifact, dir string) error {
	// The name comes from the untrusted program: it must stay in dir.
	if !filepath.IsLocal(a.Name) || filepath.Base(a.Name) != a.Name {
		return errors.New("not a plain file name")
	}
	body, _, _, err := c.Artifact(ctx, id, a.Name, "")
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer body.Close()
	return writeChecked(dir, a.Name, body, a.SHA256)
}

// writeChecked writes r to dir/name through a temporary file, so a
// failed download leaves no partial file. When sum is not empty, the
// content's SHA-256 (hex) must be it.
func writeChecked(dir, name string, r io.Reader, sum string) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); sum != "" && got != sum {
		return fmt.Errorf("sha256 is %s, the server says %s", got, sum)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

// hasResult reports whether output is a result.json (not absent or null).
func hasResult(output json.RawMessage) bool {
	s := strings.TrimSpace(string(output))
	return s != "" && s != "null"
}

// printResult prints the program's result.json, indented, when it wrote
// one.
func printResult(w io.Writer, output json.RawMessage) error {
	if !hasResult(output) {
		return nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, output, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// spinnerFrames are the frames of the progress line's spinner.
var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// progress shows a job's state on stderr. On a terminal it is one line
// with a spinner and the time in the state ("running 3.2s"), redrawn
// until output comes, which clears it first; elsewhere a plain line per
// state ("tako: job ID queued"). Its methods are safe for concurrent use.
type progress struct {
	w   io.Writer
	id  string
	tty bool

	mu      sync.Mutex
	state   string
	since   time.Time
	frame   int
	drawn   bool // the line is on the screen
	midLine bool // the last output did not end its line: do not draw over it

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// newProgress returns the progress of job id on w; tty says whether w is
// a terminal, on which a goroutine redraws it until close.
func newProgress(w io.Writer, id string, tty bool) *progress {
	p := &progress{w: w, id: id, tty: tty, stop: make(chan struct{}), done: make(chan struct{})}
	if !tty {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.frame++
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// set records the job's new state and shows it.
func (p *progress) set(state string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state == p.state {
		return
	}
	p.state, p.since = state, time.Now()
	if p.tty {
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "tako: job %s %s\n", p.id, state)
}

// print writes the program's text to w, clearing the progress line
// first.
func (p *progress) print(w io.Writer, text string) {
	if text == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	io.WriteString(w, text)
	p.midLine = !strings.HasSuffix(text, "\n")
}

// note writes a line of tako's own to stderr.
func (p *progress) note(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	if p.midLine {
		io.WriteString(p.w, "\n")
		p.midLine = false
	}
	io.WriteString(p.w, line+"\n")
}

// draw redraws the progress line; p.mu is held.
func (p *progress) draw() {
	if !p.tty || p.state == "" || p.midLine {
		return
	}
	elapsed := time.Since(p.since).Seconds()
	suffix := fmt.Sprintf(" %.1fs", elapsed)
	if p.state == "queued" {
		suffix = "…" + suffix
	}
	fmt.Fprintf(p.w, "\r\033[K%s job %s %s%s", spinnerFrames[p.frame%len(spinnerFrames)], p.id, p.state, suffix)
	p.drawn = true
}

// clear removes the progress line; p.mu is held.
func (p *progress) clear() {
	if p.drawn {
		io.WriteString(p.w, "\r\033[K")
		p.drawn = false
	}
}

// close stops the redrawing and clears the line. It may be called more
// than once.
func (p *progress) close() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}
