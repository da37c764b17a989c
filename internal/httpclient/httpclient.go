// Package httpclient holds what tako's command-line clients of a running
// server (tako bench, tako status) share: one request read to the end, and
// the client-safe text of an error answer.
package httpclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// Do sends one request with client and reads the whole answer, so the
// connection goes back to the pool. A non-nil body is sent as JSON. It
// returns the status and the body; an error means no complete answer.
func Do(ctx context.Context, client *http.Client, method, url string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// ErrorDetail is the "detail" of a tako error body, or the body itself
// when it has none, on one line of at most 200 bytes (Clip).
func ErrorDetail(body []byte) string {
	var e struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Detail) > 0 {
		var s string
		if json.Unmarshal(e.Detail, &s) == nil {
			return Clip(s, 200)
		}
		return Clip(string(e.Detail), 200)
	}
	return Clip(string(body), 200)
}

// Clip returns s on one line, its runs of white space made single spaces,
// cut to its first n bytes and "..." when it is longer.
func Clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
