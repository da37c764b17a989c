package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	// userAgent is what tako's webhook requests say they are.
	userAgent = "tako-webhook/1"
	// snippetBytes is how much of a receiver's answer an Attempt keeps.
	snippetBytes = 512
	// drainBytes is how much more of an answer is read, so a short one
	// leaves its connection reusable; a longer one closes it.
	drainBytes = 64 << 10
)

// Message is one webhook: the same ID, Timestamp and Body are sent on every
// attempt, so the receiver can recognise a retry.
type Message struct {
	ID        string    // unique id, sent in HeaderID
	Timestamp time.Time // when the message was made; sent in unix seconds
	Body      []byte    // JSON
}

// Attempt is what happened when a message was sent once. Exactly one of
// StatusCode and Error is set: StatusCode when the receiver answered
// (whatever the status), Error when it did not.
type Attempt struct {
	StatusCode      int           // the receiver's status; 0 when it did not answer
	RetryAfter      time.Duration // the answer's Retry-After, 0 when absent or past
	Error           string        // why there is no answer, in words
	Duration        time.Duration // from sending to the end of the snippet
	ResponseSnippet string        // the answer's first bytes (at most 512), valid UTF-8
}

// Deliver POSTs m to url once with c (see NewClient), signed with
// secrets, and reports what happened. It does not retry; Decide says
// whether to.
func Deliver(ctx context.Context, c *http.Client, url string, secrets []Secret, m Message) Attempt {
	began := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Body))
	if err != nil {
		return Attempt{Error: fmt.Sprintf("bad callback URL: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, m.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(m.Timestamp.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(secrets, m.ID, m.Timestamp, m.Body))
	resp, err := c.Do(req)
	if err != nil && ctx.Err() != nil {
		// The caller gave up (shutdown, say): not the receiver's fault.
		return Attempt{Error: fmt.Sprintf("stopped before the receiver answered: %v", ctx.Err()), Duration: time.Since(began)}
	}
	if err != nil {
		return Attempt{Error: explain(err, req.URL.Hostname(), c.Timeout), Duration: time.Since(began)}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, snippetBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
	return Attempt{
		StatusCode:      resp.StatusCode,
		RetryAfter:      parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Duration:        time.Since(began),
		ResponseSnippet: snippet(head),
	}
}

// explain says in words why a request got no answer. host is the URL's
// host, named in a refusal when the dialed address came from it.
func explain(err error, host string, timeout time.Duration) string {
	var refused *RefusedError
	if errors.As(err, &refused) {
		r := *refused
		if _, perr := netip.ParseAddr(host); perr != nil {
			r.Host = host // a name, which resolved to the refused address
		}
		return r.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		if timeout > 0 {
			return fmt.Sprintf("timed out after %s", timeout)
		}
		return "timed out"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("cannot resolve %s: %s", dnsErr.Name, dnsErr.Err)
	}
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		if errors.As(err, &opErr) && opErr.Addr != nil {
			return fmt.Sprintf("connection refused by %s", opErr.Addr)
		}
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the receiver"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the receiver closed the connection without answering"
	}
	if ue != nil {
		return ue.Err.Error() // without "Post <url>:", which the caller knows
	}
	return err.Error()
}

// parseRetryAfter reads a Retry-After header, in delta-seconds or as an
// HTTP date, relative to now. It is 0 when v is empty, unreadable or in
// the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Past a century the number means "never"; keep the Duration sane.
		return time.Duration(min(secs, 100*365*24*3600)) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0
	}
	return t.Sub(now)
}

// snippet returns b as valid UTF-8 no longer than b: a rune cut at the end
// is dropped, and each run of invalid bytes becomes "?".
func snippet(b []byte) string {
	// A cut rune is at most 3 bytes from the end: drop it.
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				b = b[:i]
			}
			break
		}
	}
	return strings.ToValidUTF8(string(b), "?")
}
