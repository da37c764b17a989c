package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
)

// The results of an Attempt.
const (
	// ResultAllowed: the proxy connected to the destination.
	ResultAllowed = "allowed"
	// ResultRefused: policy said no (not in the allowlist, a private or
	// metadata address, ...).
	ResultRefused = "refused"
	// ResultFailed: policy allowed it, but the destination could not be
	// resolved or connected.
	ResultFailed = "failed"
	// ResultOmitted marks the last Attempt of a lease that made more than
	// MaxAttempts: it stands for all those not listed.
	ResultOmitted = "omitted"
)

// MaxAttempts is how many attempts a lease lists. The attempts after them
// are summed up in one final Attempt: Host "…", Result ResultOmitted, the
// count in Reason and their bytes in BytesSent and BytesReceived.
const MaxAttempts = 1000

// Attempt is one request made with a lease's credentials from its
// container: what was asked for and what the proxy did.
type Attempt struct {
	Host   string // the host name or address asked for, in lower case
	Port   int
	Result string // ResultAllowed, ResultRefused, ResultFailed, or ResultOmitted
	Reason string // short human reason, e.g. "api.example.com:8443 is not in this job's allowlist"
	// Rule is the allowlist entry that matched the host and port (e.g.
	// "*.example.com" or "api.test:8443"), also when the address it
	// resolved to was then refused; "" when none matched.
	Rule string
	// BytesSent and BytesReceived are the bytes between the proxy and the
	// destination: for HTTPS (CONNECT) the tunnel's, for plain HTTP the
	// request and response as they went over the wire, headers included.
	BytesSent, BytesReceived int64
}

// Lease is the proxy credentials of one job container. Its credentials
// open nothing until Open binds them to the container's address and
// allowlist, and nothing again after Close: until then and from then on
// they get 407, unaudited. A Lease is safe for concurrent use.
type Lease struct {
	proxy        *proxy
	user, secret string
	url          string

	mu       sync.Mutex
	records  []*record
	overflow *record // the attempts beyond MaxAttempts; nil until there are some
	conns    map[*countingConn]struct{}
	closed   bool
}

// record is an Attempt as it happens. Its attempt is guarded by the
// lease's mu; its bytes are counted as they pass.
type record struct {
	attempt        Attempt
	omitted        int // for the overflow record: how many attempts it stands for
	sent, received atomic.Int64
}

// Lease returns new proxy credentials that open nothing yet. Call Open
// once the job's container has its address, and Close when it is gone.
func (g *Gateway) Lease() *Lease { return newLease(g.proxy, g.gateway, g.proxy.public.port) }

// newLease registers a new lease with p, whose public server is at gw:port.
func newLease(p *proxy, gw netip.Addr, port int) *Lease {
	l := &Lease{proxy: p, user: randomHex(8), secret: randomHex(16), conns: map[*countingConn]struct{}{}}
	l.url = credentialURL(l.user, l.secret, gw, port)
	p.register(l.user, &client{secret: l.secret, lease: l})
	return l
}

// ProxyURL is the URL, credentials included, that the job sets as
// HTTP_PROXY and HTTPS_PROXY: http://user:secret@gateway:port.
func (l *Lease) ProxyURL() string { return l.url }

// Open lets requests with the lease's credentials that come from source,
// the container's address on the egress network, reach hosts, through the
// server that refuses private addresses outside Options.AllowPrivate.
// Requests from any other address are refused with 407 and not audited.
// A later Open replaces the address and the hosts; Open after Close does
// nothing.
func (l *Lease) Open(source netip.Addr, hosts []Host) {
	l.proxy.reopen(l.user, source.Unmap(), compileAll(hosts))
}

// Close withdraws the credentials, cuts the connections still open
// through them, and returns the attempts made with them in the order the
// proxy received them. Close is idempotent: a later call returns the same
// attempts.
func (l *Lease) Close() []Attempt {
	l.proxy.revoke(l.user)
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[*countingConn]struct{}{}
	attempts := make([]Attempt, 0, len(l.records)+1)
	for _, r := range l.records {
		a := r.attempt
		if a.Result == "" {
			a.Result, a.Reason = ResultFailed, "no outcome before the lease was closed"
		}
		a.BytesSent, a.BytesReceived = r.sent.Load(), r.received.Load()
		attempts = append(attempts, a)
	}
	if r := l.overflow; r != nil {
		attempts = append(attempts, Attempt{
			Host: "…", Result: ResultOmitted, Reason: fmt.Sprintf("%d more attempts were not listed", r.omitted),
			BytesSent: r.sent.Load(), BytesReceived: r.received.Load(),
		})
	}
	l.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	return attempts
}

// overflowID is the record id of the attempts beyond MaxAttempts.
const overflowID = "+"

// begin records a new attempt, as the allowlist judged it, and returns
// its id: "" when the lease is closed.
func (l *Lease) begin(host string, port int, allowed bool, reason, rule string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ""
	}
	if len(l.records) >= MaxAttempts {
		if l.overflow == nil {
			l.overflow = &record{}
		}
		l.overflow.omitted++
		return overflowID
	}
	r := &record{attempt: Attempt{Host: host, Port: port, Rule: rule}}
	if !allowed {
		r.attempt.Result, r.attempt.Reason = ResultRefused, reason
	}
	l.records = append(l.records, r)
	return strconv.Itoa(len(l.records) - 1)
}

// record returns the record with id, nil when there is none.
func (l *Lease) record(id string) *record {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id == overflowID {
		return l.overflow
	}
	i, err := strconv.Atoi(id)
	if err != nil || i < 0 || i >= len(l.records) {
		return nil
	}
	return l.records[i]
}

// settle gives r its outcome unless it has one already, and returns the
// attempt as it stands: the first outcome of an attempt stands (a
// connection made is "allowed" even if the request failed after).
func (l *Lease) settle(r *record, result, reason string) Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.attempt.Result == "" && r != l.overflow {
		r.attempt.Result, r.attempt.Reason = result, reason
	}
	return r.attempt
}

// track counts conn's bytes on r until it closes, and has Close cut it.
// It returns false, and tracks nothing, when the lease is closed.
func (l *Lease) track(c *countingConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

// untrack forgets a closed connection.
func (l *Lease) untrack(c *countingConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}
