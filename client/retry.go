package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// retryPolicy says when a request may be sent again.
type retryPolicy int

const (
	// retryDial retries only when no connection was made, so the server
	// cannot have seen the request: Execute, Cancel, Rerun, Fork, and
	// Submit without an idempotency key.
	retryDial retryPolicy = iota
	// retrySafe also retries when the request may have reached the server
	// (a connection that broke, 503, 429): GETs, and Submit with an
	// idempotency key, which the server answers with the same job.
	retrySafe
)

// maxBackoff bounds the wait between retries without Retry-After.
const maxBackoff = 5 * time.Second

// withRetries runs attempt until it succeeds, fails in a way policy does
// not retry, or c.retries retries are spent. Between attempts it waits
// Retry-After when the server sent one (but never past ctx's deadline or
// c.maxRetryAfter: then the error is returned at once), else an
// exponential backoff with jitter.
func (c *Client) withRetries(ctx context.Context, policy retryPolicy, attempt func() (*http.Response, error)) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := attempt()
		if err == nil {
			return resp, nil
		}
		wait, ok := c.retryable(ctx, policy, err, n)
		if !ok {
			return nil, err
		}
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
			return nil, err // the retry could not finish in time
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// retryable decides whether attempt n's error may be retried and how long
// to wait first.
func (c *Client) retryable(ctx context.Context, policy retryPolicy, err error, n int) (time.Duration, bool) {
	if n >= c.retries || ctx.Err() != nil {
		return 0, false
	}
	backoff := c.backoff << min(n, 16)
	backoff = min(backoff, maxBackoff)
	backoff = backoff/2 + rand.N(backoff/2+1) // jitter: spread clients out
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr):
		if policy != retrySafe || (apiErr.Status != http.StatusServiceUnavailable && apiErr.Status != http.StatusTooManyRequests) {
			return 0, false
		}
		if apiErr.RetryAfter > c.maxRetryAfter {
			return 0, false // the caller decides whether to wait that long
		}
		if apiErr.RetryAfter > 0 {
			return apiErr.RetryAfter, true
		}
		return backoff, true
	case notConnected(err):
		return backoff, true
	case policy == retrySafe && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		// Any other failure of a safe request is the transport's: a
		// connection that broke, a reset, a timeout of the http.Client.
		return backoff, true
	}
	return 0, false
}

// notConnected reports whether err means no connection to the server was
// made (a refused or failed dial, a name that did not resolve), so the
// server never saw the request.
func notConnected(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
