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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stripe/smokescreen/pkg/smokescreen"
	acl "github.com/stripe/smokescreen/pkg/smokescreen/acl/v1"
)

// proxy is the gateway's proxy: two smokescreen servers on the gateway
// address, one that refuses every private address and one that lets
// trusted grants reach private ones, and the grants, by client user name.
type proxy struct {
	public, trusted *server

	mu     sync.RWMutex
	grants map[string]clientGrant

	unguarded string // why the host firewall is missing, "" when it is there
}

// clientGrant is a grant and the secret its client presents.
type clientGrant struct {
	secret string
	Grant
}

// server is one smokescreen server and the way to stop it.
type server struct {
	port int
	quit chan interface{}
	done chan struct{}
}

// connectTimeout bounds the proxy's dial to a destination.
const connectTimeout = 10 * time.Second

// startProxy starts both servers on gw.
func startProxy(gw netip.Addr, logger *slog.Logger) (*proxy, error) {
	p := &proxy{grants: map[string]clientGrant{}}
	var err error
	if p.public, err = p.serve(gw, false, logger); err != nil {
		return nil, err
	}
	if p.trusted, err = p.serve(gw, true, logger); err != nil {
		p.public.stop()
		return nil, err
	}
	return p, nil
}

// serve starts a smokescreen server on gw at a free port.
func (p *proxy) serve(gw netip.Addr, trusted bool, logger *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
	if err != nil {
		return nil, fmt.Errorf("egress: listen on the gateway %s: %w", gw, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := smokescreen.NewConfig()
	cfg.Ip, cfg.Port, cfg.Listener = gw.String(), uint16(port), ln
	cfg.Log = discardLogrus(logger)
	cfg.ConnectTimeout = connectTimeout
	cfg.UnsafeAllowPrivateRanges = trusted
	cfg.RoleFromRequest = p.role
	cfg.EgressACL = decider{p: p, trusted: trusted}
	cfg.AdditionalErrorMessageOnDeny = "tako: this destination is not in the job's allowlist"
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("egress: proxy configuration: %w", err)
	}
	if err := cfg.InitializeSelfConnectionDetection(); err != nil {
		logger.Warn("egress: self-connection detection", "error", err)
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

// grant registers g for user and returns the port of the server its
// client must use.
func (p *proxy) grant(user, secret string, g Grant) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.grants[user] = clientGrant{secret: secret, Grant: g}
	if g.Private {
		return p.trusted.port
	}
	return p.public.port
}

func (p *proxy) revoke(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.grants, user)
}

func (p *proxy) close() {
	p.public.stop()
	p.trusted.stop()
}

// errNoCredentials is a request without valid proxy credentials.
var errNoCredentials = errors.New("egress: no valid proxy credentials")

// role returns the user name of a request's valid credentials: smokescreen
// calls it the request's role.
func (p *proxy) role(r *http.Request) (string, error) {
	scheme, encoded, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", errNoCredentials
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", errNoCredentials
	}
	user, secret, _ := strings.Cut(string(raw), ":")
	p.mu.RLock()
	g, ok := p.grants[user]
	p.mu.RUnlock()
	if !ok || !constantTimeEqual(g.secret, secret) {
		return "", errNoCredentials
	}
	return user, nil
}

// decider is smokescreen's egress ACL: a destination is allowed when the
// role's grant names its host and port, and the grant belongs on this
// server.
type decider struct {
	p       *proxy
	trusted bool
}

// Decide implements acl.Decider.
func (d decider) Decide(args acl.DecideArgs) (acl.Decision, error) {
	d.p.mu.RLock()
	g, ok := d.p.grants[args.Service]
	d.p.mu.RUnlock()
	switch {
	case !ok:
		return acl.Decision{Result: acl.Deny, Reason: "the credentials were withdrawn"}, nil
	case g.Private != d.trusted:
		return acl.Decision{Result: acl.Deny, Reason: "wrong proxy port for these credentials"}, nil
	}
	port := destinationPort(args.Req)
	for _, h := range g.Hosts {
		if strings.EqualFold(h.Name, args.Host) && slices.Contains(h.Ports, port) {
			return acl.Decision{Result: acl.Allow, Reason: "host and port are in the grant"}, nil
		}
	}
	return acl.Decision{Result: acl.Deny, Reason: fmt.Sprintf("%s:%d is not in the grant", args.Host, port)}, nil
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
