package webhook

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// receiver is a real loopback HTTP server that counts the connections it
// accepts and the requests it gets, and checks the signature of each.
type receiver struct {
	*httptest.Server
	conns    atomic.Int32
	requests atomic.Int32

	mu       sync.Mutex
	verified []error // Verify's verdict on each request
}

// newReceiver starts a receiver whose handler answers after checking the
// signature with secrets (when any).
func newReceiver(t *testing.T, secrets []Secret, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if secrets != nil {
			body, _ := io.ReadAll(req.Body)
			r.mu.Lock()
			r.verified = append(r.verified, Verify(secrets, req.Header, body, time.Now(), time.Minute))
			r.mu.Unlock()
		}
		handler(w, req)
	}))
	r.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

// localhostURL is the receiver's URL with the hostname localhost, which
// resolves to loopback.
func (r *receiver) localhostURL() string {
	return strings.Replace(r.URL, "127.0.0.1", "localhost", 1)
}

// newTestClient returns NewClient(p, timeout), closed when the test ends.
func newTestClient(t *testing.T, p Policy, timeout time.Duration) *http.Client {
	t.Helper()
	c := NewClient(p, timeout)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func ok(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"received": true}`) }

// testMessage is a message made now.
func testMessage() Message {
	return Message{ID: "msg_test", Timestamp: time.Now(), Body: []byte(`{"job_id": "j1", "status": "completed"}`)}
}

// TestDeliverRefusesLoopbackAtDial sends to a hostname that resolves to
// loopback: the guarded client must refuse it before connecting, and the
// same delivery with AllowPrivateNetworks must arrive, signed.
func TestDeliverRefusesLoopbackAtDial(t *testing.T) {
	t.Parallel()
	secrets := mustSecrets(t, newSecretText(t))
	r := newReceiver(t, secrets, ok)
	ctx := context.Background()

	for _, url := range []string{r.localhostURL(), r.URL} {
		a := Deliver(ctx, newTestClient(t, Policy{AllowHTTP: true}, 5*time.Second), url, secrets, testMessage())
		if a.StatusCode != 0 || !strings.Contains(a.Error, "refused: ") || !strings.Contains(a.Error, "loopback address") {
			t.Errorf("Deliver to %s = %+v, want a refusal naming a loopback address", url, a)
		}
		if strings.Contains(url, "localhost") && !strings.Contains(a.Error, "localhost resolves to") {
			t.Errorf("refusal %q does not name the hostname", a.Error)
		}
	}

	a := Deliver(ctx, newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second), r.localhostURL(), secrets, testMessage())
	if a.StatusCode != http.StatusOK || a.Error != "" || a.ResponseSnippet != `{"received": true}` {
		t.Fatalf("Deliver with AllowPrivateNetworks = %+v, want 200 and the body", a)
	}
	// The server counts each connection as it accepts it, in order, before
	// serving it: had a refused dial connected, it would be counted too.
	if n := r.conns.Load(); n != 1 {
		t.Errorf("the receiver accepted %d connections, want 1 (the allowed delivery's only)", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.verified) != 1 || r.verified[0] != nil {
		t.Errorf("receiver's Verify verdicts = %v, want one nil", r.verified)
	}
}

func TestDeliverSendsHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	r := newReceiver(t, nil, func(w http.ResponseWriter, req *http.Request) {
		got <- req.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	})
	m := testMessage()
	secrets := mustSecrets(t, newSecretText(t), newSecretText(t))
	a := Deliver(context.Background(), newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 0), r.URL, secrets, m)
	if a.StatusCode != http.StatusNoContent || a.Duration <= 0 {
		t.Fatalf("Deliver = %+v, want 204 with a duration", a)
	}
	h := <-got
	for name, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "tako-webhook/1",
		HeaderID: m.ID, HeaderTimestamp: fmt.Sprint(m.Timestamp.Unix()),
	} {
		if h.Get(name) != want {
			t.Errorf("header %s = %q, want %q", name, h.Get(name), want)
		}
	}
	if sigs := strings.Fields(h.Get(HeaderSignature)); len(sigs) != 2 {
		t.Errorf("%s = %q, want two signatures, one per secret", HeaderSignature, h.Get(HeaderSignature))
	}
}

func TestDeliverDoesNotFollowRedirect(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, nil, ok)
	first := newReceiver(t, nil, func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, target.URL+"/elsewhere", http.StatusFound)
	})
	a := Deliver(context.Background(), newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second), first.URL, mustSecrets(t, newSecretText(t)), testMessage())
	if a.StatusCode != http.StatusFound || a.Error != "" {
		t.Fatalf("Deliver = %+v, want the 302 itself", a)
	}
	if n := target.requests.Load(); n != 0 {
		t.Errorf("the redirect's target got %d requests, want 0", n)
	}
	if d := Decide(1, a, DefaultSchedule); d.Outcome == Delivered {
		t.Errorf("Decide after a 302 = %+v, want not delivered", d)
	}
}

func TestDeliverTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	r := newReceiver(t, nil, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before r.Close, which waits for the handler
	a := Deliver(context.Background(), newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 300*time.Millisecond), r.URL, mustSecrets(t, newSecretText(t)), testMessage())
	if a.StatusCode != 0 || a.Error != "timed out after 300ms" {
		t.Errorf("Deliver = %+v, want Error %q", a, "timed out after 300ms")
	}
	if a.Duration < 300*time.Millisecond {
		t.Errorf("Duration = %s, want at least the 300ms timeout", a.Duration)
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	a := Deliver(context.Background(), newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second), "http://"+addr+"/", mustSecrets(t, newSecretText(t)), testMessage())
	if want := "connection refused by " + addr; a.Error != want {
		t.Errorf("Deliver = %+v, want Error %q", a, want)
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		header   func() string
		min, max time.Duration
	}{
		{"seconds", func() string { return "120" }, 120 * time.Second, 120 * time.Second},
		{"HTTP date", func() string { return time.Now().Add(time.Hour).UTC().Format(http.TimeFormat) }, 58 * time.Minute, time.Hour},
		{"absent", func() string { return "" }, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t, nil, func(w http.ResponseWriter, _ *http.Request) {
				if v := tt.header(); v != "" {
					w.Header().Set("Retry-After", v)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			a := Deliver(context.Background(), newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second), r.URL, mustSecrets(t, newSecretText(t)), testMessage())
			if a.StatusCode != http.StatusServiceUnavailable || a.RetryAfter < tt.min || a.RetryAfter > tt.max {
				t.Errorf("Deliver = %+v, want 503 with RetryAfter in [%s, %s]", a, tt.min, tt.max)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"Thu, 01 Jan 2026 12:02:00 GMT", 2 * time.Minute},
		{"Thursday, 01-Jan-26 12:00:10 GMT", 10 * time.Second}, // RFC 850, which HTTP dates may be
		{"Thu, 01 Jan 2026 11:00:00 GMT", 0},                   // past
		{"soon", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDeliverSnippetIsValidUTF8(t *testing.T) {
	t.Parallel()
	// 511 bytes of "a", then "é" cut after its first byte at 512.
	body := strings.Repeat("a", 511) + strings.Repeat("é", 100)
	r := newReceiver(t, nil, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, body)
	})
	a := Deliver(context.Background(), newTestClient(t, Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second), r.URL, mustSecrets(t, newSecretText(t)), testMessage())
	if a.StatusCode != http.StatusInternalServerError || a.ResponseSnippet != strings.Repeat("a", 511) {
		t.Errorf("Deliver = {StatusCode: %d, snippet of %d bytes}, want 500 and the 511 whole bytes", a.StatusCode, len(a.ResponseSnippet))
	}
	if got := snippet([]byte("ok\xff\xfe!")); got != "ok?!" || !utf8.ValidString(got) {
		t.Errorf("snippet of invalid bytes = %q, want %q", got, "ok?!")
	}
}
