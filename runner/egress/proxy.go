package egress

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stripe/smokescreen/pkg/smokescreen"
)

// proxy is the gateway's proxy: two smokescreen servers on the gateway
// address, one that refuses private addresses (but the operator's
// AllowPrivate ranges) and one that lets trusted grants reach them, and
// the clients, by user name.
type proxy struct {
	public, trusted *server
	logger          *slog.Logger

	mu      sync.RWMutex
	clients map[string]*client

	unguarded string // why the host firewall is missing, "" when it is there
}

// client is what one set of credentials may do. A client is replaced, not
// changed, so that readers may hold it without the lock.
type client struct {
	secret  string
	rules   []rule
	private bool       // served by the trusted server
	lease   *Lease     // nil for a Grant
	source  netip.Addr // a lease's container address; invalid until Open
}

// server is one smokescreen server and the way to stop it.
type server struct {
	port int
	quit chan interface{}
	done chan struct{}
}

// connectTimeout bounds the proxy's dial to a destination.
const connectTimeout = 10 * time.Second

// policy is what both servers share: the private ranges they reach and
// the resolver.
type policy struct {
	allow    []smokescreen.RuleRange
	resolver smokescreen.Resolver
}

// startProxy starts both servers on gw.
func startProxy(gw netip.Addr, pol policy, logger *slog.Logger) (*proxy, error) {
	p := &proxy{clients: map[string]*client{}, logger: logger}
	var err error
	if p.public, err = p.serve(gw, false, pol); err != nil {
		return nil, err
	}
	if p.trusted, err = p.serve(gw, true, pol); err != nil {
		p.public.stop()
		return nil, err
	}
	return p, nil
}

// serve starts a smokescreen server on gw at a free port.
func (p *proxy) serve(gw netip.Addr, trusted bool, pol policy) (*server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
	if err != nil {
		return nil, fmt.Errorf("egress: listen on the gateway %s: %w", gw, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := smokescreen.NewConfig()
	cfg.Ip, cfg.Port, cfg.Listener = gw.String(), uint16(port), ln
	cfg.Log = discardLogrus(p.logger)
	cfg.ConnectTimeout = connectTimeout
	cfg.UnsafeAllowPrivateRanges = trusted
	cfg.AllowRanges = pol.allow
	cfg.Resolver = pol.resolver
	cfg.RoleFromRequest = p.role
	cfg.EgressACL = decider{p: p, trusted: trusted}
	cfg.ProxyDialTimeout = p.dial
	cfg.RejectResponseHandlerWithCtx = p.rejected
	// A negative limit keeps no idle connection to destinations: each plain
	// HTTP request gets a connection of its own, so its bytes count on its
	// own attempt, never on another client's.
	cfg.TransportMaxIdleConnsPerHost = -1
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("egress: proxy configuration: %w", err)
	}
	s := &server{port: port, quit: make(chan interface{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		smokescreen.StartWithConfig(cfg, s.quit)
	}()
	return s, nil
}

func (s *server) stop() {
	close(s.quit)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

// ports are the ports the servers listen on.
func (p *proxy) ports() []int { return []int{p.public.port, p.trusted.port} }

func (p *proxy) close() {
	p.public.stop()
	p.trusted.stop()
}

// register adds the client of user.
func (p *proxy) register(user string, c *client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[user] = c
}

// reopen binds the lease of user to source and rules, if it is still
// there.
func (p *proxy) reopen(user string, source netip.Addr, rules []rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[user]; ok {
		p.clients[user] = &client{secret: c.secret, lease: c.lease, source: source, rules: rules}
	}
}

func (p *proxy) revoke(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, user)
}

// client returns the client of user, nil when there is none.
func (p *proxy) client(user string) *client {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.clients[user]
}

// Why a request's credentials are not valid.
var (
	errNoCredentials = errors.New("egress: no valid proxy credentials")
	errNotOpen       = errors.New("egress: the lease is not open yet")
	errOtherSource   = errors.New("egress: lease credentials used from another address")
)

// identify returns the user name and client of a request's valid
// credentials. A lease's credentials are valid only from the address it
// was opened for.
func (p *proxy) identify(r *http.Request) (string, *client, error) {
	scheme, encoded, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", nil, errNoCredentials
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", nil, errNoCredentials
	}
	user, secret, _ := strings.Cut(string(raw), ":")
	c := p.client(user)
	if c == nil || !constantTimeEqual(c.secret, secret) {
		return "", nil, errNoCredentials
	}
	if c.lease != nil {
		if !c.source.IsValid() {
			return "", nil, errNotOpen
		}
		src, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || src.Addr().Unmap() != c.source {
			return "", nil, errOtherSource
		}
	}
	return user, c, nil
}

// role is smokescreen's RoleFromRequest: the user name of a request's
// valid credentials. A request with a lease's credentials from another
// address than the lease's is refused like one without credentials, and
// is not audited on the lease, lest whoever copied them fill its audit;
// it is logged instead.
func (p *proxy) role(r *http.Request) (string, error) {
	user, _, err := p.identify(r)
	if errors.Is(err, errOtherSource) {
		p.logger.Warn("egress: lease credentials used from another address", "source", r.RemoteAddr, "destination", r.Host)
	}
	return user, err
}

// destinationPort is the port a proxied request goes to: the CONNECT
// target's, or the URL's (80 by default for plain HTTP).
func destinationPort(r *http.Request) int {
	hostport := r.Host
	if r.Method != http.MethodConnect && r.URL != nil && r.URL.Host != "" {
		hostport = r.URL.Host
	}
	if _, port, err := net.SplitHostPort(hostport); err == nil {
		n, _ := strconv.Atoi(port)
		return n
	}
	if r.URL != nil && r.URL.Scheme == "https" {
		return 443
	}
	return 80
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// credentialURL is the proxy URL of the given credentials on the server at
// gw:port.
func credentialURL(user, secret string, gw netip.Addr, port int) string {
	return "http://" + user + ":" + secret + "@" + net.JoinHostPort(gw.String(), strconv.Itoa(port))
}

// discardLogrus is a logrus logger for smokescreen that passes its decisions
// to logger at debug level.
func discardLogrus(logger *slog.Logger) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.InfoLevel)
	l.AddHook(slogHook{logger})
	return l
}

// slogHook forwards logrus entries to slog.
type slogHook struct{ logger *slog.Logger }

func (h slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	attrs := make([]any, 0, 2*len(e.Data))
	for k, v := range e.Data {
		attrs = append(attrs, k, v)
	}
	level := slog.LevelDebug
	if e.Level <= logrus.ErrorLevel {
		level = slog.LevelWarn
	}
	h.logger.Log(context.Background(), level, "egress proxy: "+e.Message, attrs...)
	return nil
}
