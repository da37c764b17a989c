package egress

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stripe/smokescreen/pkg/smokescreen"
	acl "github.com/stripe/smokescreen/pkg/smokescreen/acl/v1"
)

// newTestProxy is a proxy without servers, for the logic around them.
func newTestProxy() *proxy {
	return &proxy{clients: map[string]*client{}, logger: slog.New(slog.DiscardHandler)}
}

// proxyRequest is a request to the proxy for target, from source, with
// the credentials of proxyURL.
func proxyRequest(t *testing.T, method, target, source, proxyURL string) *http.Request {
	t.Helper()
	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodConnect {
		r.Host = strings.TrimPrefix(target, "https://")
	}
	secret, _ := u.User.Password()
	r.SetBasicAuth(u.User.Username(), secret)
	r.Header.Set("Proxy-Authorization", r.Header.Get("Authorization"))
	r.Header.Del("Authorization")
	r.RemoteAddr = source
	return r
}

// TestLeaseCredentials: a lease's credentials are valid only once open,
// only from its source, and never again after Close.
func TestLeaseCredentials(t *testing.T) {
	t.Parallel()
	p := newTestProxy()
	l := newLease(p, netip.MustParseAddr("172.31.0.1"), 3128)
	if !strings.HasPrefix(l.ProxyURL(), "http://") || !strings.HasSuffix(l.ProxyURL(), "@172.31.0.1:3128") {
		t.Fatalf("ProxyURL() = %q", l.ProxyURL())
	}
	check := func(when, source string, want error) {
		t.Helper()
		_, _, err := p.identify(proxyRequest(t, http.MethodGet, "http://a.test/", source, l.ProxyURL()))
		if !errors.Is(err, want) {
			t.Errorf("%s, from %s: %v, want %v", when, source, err, want)
		}
	}
	check("before Open", "172.31.0.5:40000", errNotOpen)
	l.Open(netip.MustParseAddr("172.31.0.5"), []Host{{Name: "a.test"}})
	check("open", "172.31.0.5:40000", nil)
	check("open", "[::ffff:172.31.0.5]:40000", nil)
	check("open", "172.31.0.6:40000", errOtherSource)
	wrong := strings.Replace(l.ProxyURL(), ":"+l.secret+"@", ":not-the-secret@", 1)
	if _, _, err := p.identify(proxyRequest(t, http.MethodGet, "http://a.test/", "172.31.0.5:1", wrong)); !errors.Is(err, errNoCredentials) {
		t.Errorf("wrong secret: %v", err)
	}
	l.Close()
	check("after Close", "172.31.0.5:40000", errNoCredentials)
	l.Open(netip.MustParseAddr("172.31.0.5"), []Host{{Name: "a.test"}})
	check("Open after Close", "172.31.0.5:40000", errNoCredentials)
}

// TestDecide: the decider allows what a client's rules allow on the
// server its credentials belong to, and records a lease's attempts.
func TestDecide(t *testing.T) {
	t.Parallel()
	p := newTestProxy()
	l := newLease(p, netip.MustParseAddr("172.31.0.1"), 3128)
	l.Open(netip.MustParseAddr("172.31.0.5"), []Host{{Name: "*.example.com"}, {Name: "api.test", Ports: []int{8443}}})
	grant := "granted"
	p.register(grant, &client{secret: "s", rules: compileAll([]Host{{Name: "pypi.test", Ports: []int{443}}}), private: true})
	public, trusted := decider{p: p}, decider{p: p, trusted: true}
	tests := []struct {
		d               decider
		role, target    string
		upstream        string
		want            acl.DecisionResult
		reason, project string
	}{
		{public, l.user, "https://a.example.com", "", acl.Allow, "allowed by *.example.com", "0"},
		{public, l.user, "http://B.A.Example.COM./x", "", acl.Allow, "allowed by *.example.com", "1"},
		{public, l.user, "http://example.com/", "", acl.Deny, "example.com:80 is not in this job's allowlist", "2"},
		{public, l.user, "https://api.test:8443", "", acl.Allow, "allowed by api.test:8443", "3"},
		{public, l.user, "https://api.test", "", acl.Deny, "api.test:443 is not in this job's allowlist", "4"},
		{public, l.user, "https://a.example.com", "http://upstream.test:3128", acl.Deny, "an upstream proxy (X-Upstream-Https-Proxy) is not allowed", "5"},
		{trusted, l.user, "https://a.example.com", "", acl.Deny, "wrong proxy port for these credentials", "6"},
		{trusted, grant, "https://pypi.test", "", acl.Allow, "allowed by pypi.test:443", ""},
		{trusted, grant, "https://other.test", "", acl.Deny, "other.test:443 is not in the allowlist", ""},
		{public, grant, "https://pypi.test", "", acl.Deny, "wrong proxy port for these credentials", ""},
		{public, "gone", "https://pypi.test", "", acl.Deny, "the credentials were withdrawn", ""},
	}
	for _, tt := range tests {
		method := http.MethodGet
		if !strings.Contains(strings.TrimPrefix(tt.target, "https://"), "/") && strings.HasPrefix(tt.target, "https://") {
			method = http.MethodConnect
		}
		r, err := http.NewRequest(method, tt.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodConnect {
			host := strings.TrimPrefix(tt.target, "https://")
			if !strings.Contains(host, ":") {
				host += ":443"
			}
			r.Host = host
		}
		got, err := tt.d.Decide(acl.DecideArgs{Req: r, Service: tt.role, Host: r.URL.Hostname(), ConnectProxyHost: tt.upstream})
		if err != nil || got.Result != tt.want || got.Reason != tt.reason || got.Project != tt.project {
			t.Errorf("%s by %s: %v %q project %q, %v; want %v %q project %q", tt.target, tt.role, got.Result, got.Reason, got.Project, err, tt.want, tt.reason, tt.project)
		}
	}
	attempts := l.Close()
	want := []Attempt{
		{Host: "a.example.com", Port: 443, Rule: "*.example.com"},
		{Host: "b.a.example.com", Port: 80, Rule: "*.example.com"},
		{Host: "example.com", Port: 80, Result: ResultRefused, Reason: "example.com:80 is not in this job's allowlist"},
		{Host: "api.test", Port: 8443, Rule: "api.test:8443"},
		{Host: "api.test", Port: 443, Result: ResultRefused, Reason: "api.test:443 is not in this job's allowlist"},
		{Host: "a.example.com", Port: 443, Result: ResultRefused, Reason: "an upstream proxy (X-Upstream-Https-Proxy) is not allowed"},
		{Host: "a.example.com", Port: 443, Result: ResultRefused, Reason: "wrong proxy port for these credentials"},
	}
	if len(attempts) != len(want) {
		t.Fatalf("attempts: %+v", attempts)
	}
	for i, w := range want {
		if w.Result == "" { // never settled: Close says so
			w.Result, w.Reason = ResultFailed, "no outcome before the lease was closed"
		}
		if attempts[i] != w {
			t.Errorf("attempt %d: %+v, want %+v", i, attempts[i], w)
		}
	}
}

// TestRejected: a refusal with valid credentials becomes a 403 that says
// why, and is audited; without credentials, a 407; a failure keeps its
// status and is audited as failed.
func TestRejected(t *testing.T) {
	t.Parallel()
	p := newTestProxy()
	l := newLease(p, netip.MustParseAddr("172.31.0.1"), 3128)
	source := netip.MustParseAddr("172.31.0.5")
	l.Open(source, []Host{{Name: "*"}})
	begin := func(host string, port int, allowed bool, reason string) string {
		return l.begin(host, port, allowed, reason, "*")
	}
	tests := []struct {
		name     string
		decision *smokescreen.ACLDecision
		status   int
		header   string // smokescreen's X-Smokescreen-Error
		code     int
		body     string
		attempt  Attempt
	}{
		{
			name:     "not in the allowlist",
			decision: &smokescreen.ACLDecision{Role: l.user, Project: l.begin("api.other.com", 443, false, "api.other.com:443 is not in this job's allowlist", ""), OutboundHost: "api.other.com:443", Reason: "api.other.com:443 is not in this job's allowlist"},
			status:   http.StatusProxyAuthRequired, code: http.StatusForbidden,
			body:    "tako egress: api.other.com:443 is not in this job's allowlist\n",
			attempt: Attempt{Host: "api.other.com", Port: 443, Result: ResultRefused, Reason: "api.other.com:443 is not in this job's allowlist"},
		},
		{
			name:     "private address",
			decision: &smokescreen.ACLDecision{Role: l.user, Project: begin("private.test", 8080, true, ""), OutboundHost: "private.test:8080", Reason: "no valid IP found among resolved addresses - 10.255.255.1 denied by rule 'Deny: Private Range'. "},
			status:   http.StatusProxyAuthRequired, code: http.StatusForbidden,
			body:    "tako egress: private.test resolves to 10.255.255.1, a private address\n",
			attempt: Attempt{Host: "private.test", Port: 8080, Rule: "*", Result: ResultRefused, Reason: "private.test resolves to 10.255.255.1, a private address"},
		},
		{
			name:     "metadata address",
			decision: &smokescreen.ACLDecision{Role: l.user, Project: begin("169.254.169.254", 80, true, ""), OutboundHost: "169.254.169.254:80", Reason: "no valid IP found among resolved addresses - 169.254.169.254 denied by rule 'Deny: Not Global Unicast'. "},
			status:   http.StatusProxyAuthRequired, code: http.StatusForbidden,
			body:    "tako egress: 169.254.169.254 is the cloud metadata address\n",
			attempt: Attempt{Host: "169.254.169.254", Port: 80, Rule: "*", Result: ResultRefused, Reason: "169.254.169.254 is the cloud metadata address"},
		},
		{
			name:     "unresolvable",
			decision: &smokescreen.ACLDecision{Role: l.user, Project: begin("nosuch.test", 443, true, ""), OutboundHost: "nosuch.test:443"},
			status:   http.StatusBadGateway, header: "Failed to resolve remote hostname: lookup nosuch.test: no such host", code: http.StatusBadGateway,
			body:    "tako egress: nosuch.test could not be resolved\n",
			attempt: Attempt{Host: "nosuch.test", Port: 443, Rule: "*", Result: ResultFailed, Reason: "nosuch.test could not be resolved"},
		},
		{
			name:     "connection refused",
			decision: &smokescreen.ACLDecision{Role: l.user, Project: begin("down.test", 443, true, ""), OutboundHost: "down.test:443"},
			status:   http.StatusBadGateway, header: "Failed to connect to remote host: <nil> (*net.OpError)", code: http.StatusBadGateway,
			body:    "tako egress: could not connect to down.test:443\n",
			attempt: Attempt{Host: "down.test", Port: 443, Rule: "*", Result: ResultFailed, Reason: "could not connect to down.test:443"},
		},
		{
			name: "connection refused, as the dial saw it",
			decision: func() *smokescreen.ACLDecision {
				id := begin("down2.test", 443, true, "")
				l.settle(l.record(id), ResultFailed, "could not connect to down2.test:443: connection refused")
				return &smokescreen.ACLDecision{Role: l.user, Project: id, OutboundHost: "down2.test:443"}
			}(),
			status: http.StatusBadGateway, header: "Failed to connect to remote host: <nil> (*net.OpError)", code: http.StatusBadGateway,
			body:    "tako egress: could not connect to down2.test:443: connection refused\n",
			attempt: Attempt{Host: "down2.test", Port: 443, Rule: "*", Result: ResultFailed, Reason: "could not connect to down2.test:443: connection refused"},
		},
		{
			name:     "no credentials",
			decision: &smokescreen.ACLDecision{Reason: "Client role cannot be determined", OutboundHost: "a.test:80"},
			status:   http.StatusProxyAuthRequired, code: http.StatusProxyAuthRequired,
			body: "tako egress: proxy credentials are missing, wrong or withdrawn\n",
		},
	}
	var want []Attempt
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("smokescreen's\n"))}
		resp.Header.Set(errorHeader, tt.header)
		p.rejected(&smokescreen.SmokescreenContext{Decision: tt.decision}, resp)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.code)
		}
		if tt.body != "" && (string(body) != tt.body || resp.ContentLength != int64(len(body))) {
			t.Errorf("%s: body %q (length %d), want %q", tt.name, body, resp.ContentLength, tt.body)
		}
		if tt.code == http.StatusProxyAuthRequired && resp.Header.Get("Proxy-Authenticate") == "" {
			t.Errorf("%s: 407 without Proxy-Authenticate", tt.name)
		}
		if tt.attempt != (Attempt{}) {
			want = append(want, tt.attempt)
		}
	}
	got := l.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attempts:\n got %+v\nwant %+v", got, want)
	}
}

// TestLeaseAttemptsBounded: a lease lists MaxAttempts attempts and sums up
// the rest in one.
func TestLeaseAttemptsBounded(t *testing.T) {
	t.Parallel()
	p := newTestProxy()
	l := newLease(p, netip.MustParseAddr("172.31.0.1"), 3128)
	l.Open(netip.MustParseAddr("172.31.0.5"), nil)
	for i := range MaxAttempts + 25 {
		id := l.begin(fmt.Sprintf("h%d.test", i), 443, false, "no", "")
		if rec := l.record(id); rec != nil {
			rec.received.Add(10)
		}
	}
	got := l.Close()
	if len(got) != MaxAttempts+1 {
		t.Fatalf("%d attempts listed, want %d", len(got), MaxAttempts+1)
	}
	if got[MaxAttempts-1].Host != fmt.Sprintf("h%d.test", MaxAttempts-1) {
		t.Errorf("last listed attempt: %+v", got[MaxAttempts-1])
	}
	last := got[MaxAttempts]
	if last.Host != "…" || last.Result != ResultOmitted || last.Reason != "25 more attempts were not listed" || last.BytesReceived != 250 {
		t.Errorf("summary attempt: %+v", last)
	}
	if again := l.Close(); len(again) != len(got) {
		t.Errorf("a second Close returned %d attempts, the first %d", len(again), len(got))
	}
	if id := l.begin("late.test", 443, true, "", ""); id != "" {
		t.Errorf("an attempt was recorded after Close: id %q", id)
	}
}

// TestSettleKeepsFirstOutcome: an attempt that made a connection stays
// allowed when its request fails after.
func TestSettleKeepsFirstOutcome(t *testing.T) {
	t.Parallel()
	p := newTestProxy()
	l := newLease(p, netip.MustParseAddr("172.31.0.1"), 3128)
	rec := l.record(l.begin("a.test", 80, true, "", "a.test"))
	l.settle(rec, ResultAllowed, "")
	l.settle(rec, ResultFailed, "reset")
	if got := l.Close(); len(got) != 1 || got[0].Result != ResultAllowed || got[0].Reason != "" {
		t.Errorf("attempts: %+v", got)
	}
}

func TestDialFailure(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	if got := dialFailure("a.test:8081", refused); got != "could not connect to a.test:8081: connection refused" {
		t.Errorf("refused: %q", got)
	}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	if got := dialFailure("a.test:8081", timeout); got != "timed out connecting to a.test:8081" {
		t.Errorf("timeout: %q", got)
	}
}

// TestCountingConn: a lease's connection counts its bytes each way, and
// the lease's Close cuts it.
func TestCountingConn(t *testing.T) {
	t.Parallel()
	p := newTestProxy()
	l := newLease(p, netip.MustParseAddr("172.31.0.1"), 3128)
	l.Open(netip.MustParseAddr("172.31.0.5"), []Host{{Name: "a.test"}})
	rec := l.record(l.begin("a.test", 80, true, "", "a.test"))
	l.settle(rec, ResultAllowed, "")
	proxySide, destSide := net.Pipe()
	defer destSide.Close()
	c := &countingConn{Conn: proxySide, rec: rec, lease: l}
	if !l.track(c) {
		t.Fatal("track refused an open lease's connection")
	}
	go func() {
		buf := make([]byte, 5)
		io.ReadFull(destSide, buf)
		destSide.Write([]byte("response"))
	}()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	attempts := l.Close()
	if len(attempts) != 1 || attempts[0].BytesSent != 5 || attempts[0].BytesReceived != 8 {
		t.Errorf("attempts: %+v", attempts)
	}
	if _, err := destSide.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after Close the destination reads %v, want EOF", err)
	}
	if l.track(&countingConn{Conn: proxySide, rec: rec, lease: l}) {
		t.Error("track took a connection after Close")
	}
}
