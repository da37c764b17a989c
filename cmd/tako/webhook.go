package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/tako-run/tako/webhook"
)

// webhookUsage is the help text of tako webhook.
const webhookUsage = `usage: tako webhook verify --secret whsec_... [--secret whsec_...]... [--tolerance 5m] [--request FILE] < request

verify reads one raw HTTP/1.1 request, as a receiver got it (request line,
headers, blank line, body; an 'nc -l' capture, say), from standard input or
--request, and checks its Standard Webhooks signature: the webhook-id,
webhook-timestamp and webhook-signature headers, the timestamp within
--tolerance of this machine's clock, and one signature made with one of the
secrets over the body. It prints the message's id and signing time when the
request is valid, and exits non-zero saying why when it is not.
`

// webhookVerifyConfig is a validated tako webhook verify command line.
type webhookVerifyConfig struct {
	Secrets   []webhook.Secret
	Tolerance time.Duration
	Request   string // the file the request is in; "-" for standard input
}

// runWebhook is tako webhook: its only command, verify, checks the
// signature of a captured webhook request read from stdin.
func runWebhook(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, webhookUsage)
		return errUsage
	}
	switch args[0] {
	case "verify":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, webhookUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown webhook command %q\n\n%s", args[0], webhookUsage)
		return errUsage
	}
	cfg, ok, err := parseWebhookVerifyFlags(args[1:], stderr)
	if err != nil || !ok {
		return err
	}
	in := stdin
	if cfg.Request != "-" {
		f, err := os.Open(cfg.Request)
		if err != nil {
			return fmt.Errorf("open request: %w", err)
		}
		defer f.Close()
		in = f
	}
	return webhookVerify(cfg, in, time.Now(), stdout)
}

// parseWebhookVerifyFlags reads and checks tako webhook verify's
// arguments. Every error names the flag at fault and wraps errUsage; ok is
// false (with a nil error) when the user asked for help.
func parseWebhookVerifyFlags(args []string, stderr io.Writer) (cfg webhookVerifyConfig, ok bool, err error) {
	fs := newFlagSet("tako webhook verify", webhookUsage+"\nFlags:\n", stderr)
	// The secrets are parsed after the flags: the flag package would put
	// a bad one in its message.
	var secrets []string
	fs.Func("secret", "signing `SECRET` (whsec_...), repeatable while secrets rotate; required", func(v string) error {
		secrets = append(secrets, v)
		return nil
	})
	fs.DurationVar(&cfg.Tolerance, "tolerance", webhook.DefaultTolerance, "how far the webhook-timestamp may be from this machine's clock")
	fs.StringVar(&cfg.Request, "request", "-", "read the request from `FILE` instead of standard input")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, nil
		}
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	bad := func(format string, a ...any) (webhookVerifyConfig, bool, error) {
		return cfg, false, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	for i, v := range secrets {
		sec, err := webhook.ParseSecret(v)
		if err != nil {
			return bad("--secret number %d: %v", i+1, err)
		}
		cfg.Secrets = append(cfg.Secrets, sec)
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q (tako webhook verify takes only flags and reads the request from standard input)", fs.Arg(0))
	case len(cfg.Secrets) == 0:
		return bad("--secret is required: the whsec_... secret the webhook was signed with")
	case cfg.Tolerance <= 0:
		return bad("--tolerance must be positive, not %s", cfg.Tolerance)
	case cfg.Request == "":
		return bad("--request must name a file, or - for standard input")
	}
	return cfg, true, nil
}

// webhookVerify reads one raw HTTP request from in and checks its
// signature at now. It prints the verdict on a valid request and returns
// an error saying why for any other.
func webhookVerify(cfg webhookVerifyConfig, in io.Reader, now time.Time, stdout io.Writer) error {
	req, err := http.ReadRequest(bufio.NewReader(in))
	if err != nil {
		return fmt.Errorf("read request: %w (want a raw HTTP/1.1 request: request line, headers, blank line, body)", err)
	}
	defer req.Body.Close()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return fmt.Errorf("read request body: %w (does Content-Length match the body?)", err)
	}
	if err := webhook.Verify(cfg.Secrets, req.Header, body, now, cfg.Tolerance); err != nil {
		return fmt.Errorf("invalid webhook: %w", err)
	}
	// Verify has checked that the timestamp is unix seconds.
	unix, _ := strconv.ParseInt(req.Header.Get(webhook.HeaderTimestamp), 10, 64)
	signed := time.Unix(unix, 0).UTC()
	fmt.Fprintf(stdout, "valid: webhook-id %s, signed %s (%s ago)\n",
		req.Header.Get(webhook.HeaderID), signed.Format(time.RFC3339), now.Sub(signed).Round(time.Second))
	return nil
}
