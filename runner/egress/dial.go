package egress

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/stripe/goproxy"
	"github.com/stripe/smokescreen/pkg/smokescreen"
)

// errWithdrawn is a connection that a request would have made after its
// credentials were withdrawn.
var errWithdrawn = errors.New("egress: the credentials were withdrawn")

// dial is smokescreen's ProxyDialTimeout: it connects to an address the
// proxy has resolved and allowed, for a CONNECT tunnel or a plain HTTP
// request. For a lease it settles the attempt as allowed and counts the
// connection's bytes on it. Plain HTTP connections are single-use (see
// serve), so each one carries the bytes of one request.
func (p *proxy) dial(ctx context.Context, network, address string, timeout time.Duration) (net.Conn, error) {
	lease, rec, dest, err := p.attemptOf(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, address)
	if lease == nil || rec == nil {
		return conn, err
	}
	if err != nil {
		// Settled here, where the cause is at hand; smokescreen's report of
		// it comes after and finds the attempt settled.
		lease.settle(rec, ResultFailed, dialFailure(dest, err))
		return nil, err
	}
	lease.settle(rec, ResultAllowed, "")
	c := &countingConn{Conn: conn, rec: rec, lease: lease}
	if !lease.track(c) {
		conn.Close()
		return nil, errWithdrawn
	}
	return c, nil
}

// attemptOf finds the lease and the attempt of the request a dial is for,
// and the host and port it asked for, from the goproxy context smokescreen
// passes in ctx. A request with a grant's credentials has no lease or
// attempt; a request whose credentials are gone is an error.
func (p *proxy) attemptOf(ctx context.Context) (*Lease, *record, string, error) {
	pctx, ok := ctx.Value(goproxy.ProxyContextKey).(*goproxy.ProxyCtx)
	if !ok {
		return nil, nil, "", errors.New("egress: dial without a proxy context")
	}
	sctx, ok := pctx.UserData.(*smokescreen.SmokescreenContext)
	if !ok || sctx.Decision == nil {
		return nil, nil, "", errors.New("egress: dial without a proxy decision")
	}
	d := sctx.Decision
	c := p.client(d.Role)
	switch {
	case c == nil:
		return nil, nil, "", errWithdrawn
	case c.lease == nil:
		return nil, nil, d.OutboundHost, nil
	}
	return c.lease, c.lease.record(d.Project), d.OutboundHost, nil
}

// dialFailure says why a connection to dest, the host and port asked
// for, could not be made.
func dialFailure(dest string, err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out connecting to " + dest
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return "could not connect to " + dest + ": " + se.Err.Error()
	}
	return "could not connect to " + dest + ": " + err.Error()
}

// countingConn is a connection to a destination that counts its bytes on
// an attempt.
type countingConn struct {
	net.Conn
	rec   *record
	lease *Lease
	once  sync.Once
}

// Read counts the bytes received from the destination.
func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rec.received.Add(int64(n))
	return n, err
}

// Write counts the bytes sent to the destination.
func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.rec.sent.Add(int64(n))
	return n, err
}

// Close closes the connection and stops tracking it.
func (c *countingConn) Close() error {
	var err error
	c.once.Do(func() {
		c.lease.untrack(c)
		err = c.Conn.Close()
	})
	return err
}
