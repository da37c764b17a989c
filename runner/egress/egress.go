// Package egress gives containers a way out that goes only where tako
// allows. A Gateway is three parts:
//
//   - an internal Docker network of the tako instance: no route out, and no
//     traffic between its containers (inter-container communication off);
//   - an HTTP and CONNECT proxy (Stripe's smokescreen) listening on that
//     network's gateway address, the only way out. Each client presents
//     credentials that map to its own allowlist, the hosts and ports it
//     may reach; names are resolved by the proxy (the operator's pinned
//     names first), which refuses private, loopback, link-local, CGNAT
//     and metadata addresses outside the operator's private networks
//     unless a grant trusts them. A refusal is a 403 that says why;
//     missing or wrong credentials, a 407;
//   - a host firewall chain that keeps the network's containers off every
//     other port of the host, which a bridge's gateway address otherwise
//     exposes.
//
// Requirement builds download through a Grant, for the configured pip
// index. Job containers go out through a Lease: credentials bound to the
// container's address that audit every attempt made with them.
package egress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/stripe/smokescreen/pkg/smokescreen"

	"github.com/tako-run/tako/internal/dockerlabel"
)

// DockerAPI is the part of the Docker client a Gateway uses.
type DockerAPI interface {
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkInspect(ctx context.Context, networkID string, options network.InspectOptions) (network.Inspect, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	NetworkRemove(ctx context.Context, networkID string) error
}

// Labels on the networks a Gateway creates.
const (
	labelManaged  = dockerlabel.Managed
	labelKind     = dockerlabel.Kind
	labelInstance = dockerlabel.Instance
	labelLock     = dockerlabel.Lock
	kindEgress    = "egress"
)

// Options configure a Gateway.
type Options struct {
	// Instance is the tako instance's id; the network and the firewall
	// chain are named after its first 8 characters.
	Instance string
	// LockPath is the instance's lock file, recorded on the network so that
	// another instance can tell when it is gone (see Reap).
	LockPath string
	// Logger receives the proxy's decisions at debug level and problems at
	// warn level.
	Logger *slog.Logger
	// AllowPrivate are the operator's private networks
	// (egress.allow_private_networks): destinations in them may be reached
	// on every port although private, loopback, link-local or CGNAT, by
	// leases and grants alike, when a client's allowlist names them.
	// Without them every such address is refused, whatever name resolved
	// to it.
	AllowPrivate []netip.Prefix
	// Hosts are the operator's pinned names (egress.hosts): the proxy
	// resolves them, in any case, to their address without asking DNS.
	Hosts map[string]netip.Addr
}

// Gateway is an instance's internal network and the proxy on its gateway.
// It is safe for concurrent use.
type Gateway struct {
	docker  DockerAPI
	logger  *slog.Logger
	name    string     // the Docker network
	gateway netip.Addr // the network's gateway address, where the proxy listens
	proxy   *proxy
	wall    *firewall // nil when the host firewall could not be set up

	closeOnce sync.Once
}

// Start creates the instance's network, starts the proxy on its gateway and
// closes the host's other ports to it. A host firewall that cannot be set
// up (no iptables, no privilege) is not an error: Guarded then reports
// false and the reason, and callers that need it refuse their work.
func Start(ctx context.Context, docker DockerAPI, opts Options) (*Gateway, error) {
	if len(opts.Instance) < 8 {
		return nil, fmt.Errorf("egress: instance id %q is too short", opts.Instance)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pol, err := newPolicy(opts)
	if err != nil {
		return nil, err
	}
	short := opts.Instance[:8]
	g := &Gateway{docker: docker, logger: logger.With("component", "egress"), name: "tako-egress-" + short}
	gw, err := g.createNetwork(ctx, "tkeg"+short, opts)
	if err != nil {
		return nil, err
	}
	g.gateway = gw
	if g.proxy, err = startProxy(gw, pol, g.logger); err != nil {
		g.removeNetwork()
		return nil, err
	}
	g.wall, err = guard("tkeg"+short, chainName(short), g.proxy.ports())
	if err != nil {
		g.logger.Warn("egress: the host firewall could not be set up; containers on the egress network can reach the host's other ports, so source builds are refused", "error", err)
		g.wall = nil
		g.proxy.unguarded = err.Error()
	}
	return g, nil
}

// newPolicy checks the operator's private networks and pinned names and
// turns them into the proxy's policy.
func newPolicy(opts Options) (policy, error) {
	var pol policy
	for _, p := range opts.AllowPrivate {
		if !p.IsValid() {
			return policy{}, fmt.Errorf("egress: private network %q is not a valid prefix", p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		// Port 0 is smokescreen's "every port".
		pol.allow = append(pol.allow, smokescreen.RuleRange{
			Net:  net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Port: 0,
		})
	}
	resolver, err := newResolver(opts.Hosts, net.DefaultResolver)
	if err != nil {
		return policy{}, err
	}
	pol.resolver = resolver
	return pol, nil
}

// Network is the Docker network containers join to go out through the
// proxy.
func (g *Gateway) Network() string { return g.name }

// Address is the network's gateway address, where the proxy listens: the
// host of every proxy URL.
func (g *Gateway) Address() netip.Addr { return g.gateway }

// Guarded reports whether the host firewall keeps the network's containers
// off the host's other ports, and if not why.
func (g *Gateway) Guarded() (bool, string) {
	if g.wall == nil {
		return false, g.proxy.unguarded
	}
	return true, ""
}

// Grant is what one client of the proxy may reach.
type Grant struct {
	// Hosts are the destinations allowed (see Host for wildcards and
	// default ports).
	Hosts []Host
	// Private lets the grant's hosts resolve to private addresses (RFC
	// 1918, unique local): for destinations the operator configured, such
	// as a company's pip mirror. Loopback, link-local (the metadata
	// address among them) and CGNAT addresses are refused all the same.
	Private bool
}

// Grant registers grant and returns the proxy URL, with credentials unique
// to it, that a client sets as HTTP_PROXY and HTTPS_PROXY, and a function
// that withdraws it. The credentials stop working when it is withdrawn.
func (g *Gateway) Grant(grant Grant) (proxyURL string, revoke func()) {
	user, secret := randomHex(8), randomHex(16)
	g.proxy.register(user, &client{secret: secret, rules: compileAll(grant.Hosts), private: grant.Private})
	port := g.proxy.public.port
	if grant.Private {
		port = g.proxy.trusted.port
	}
	return credentialURL(user, secret, g.gateway, port), func() { g.proxy.revoke(user) }
}

// Close stops the proxy, removes the firewall chain and the network. It is
// idempotent.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		g.proxy.close()
		if g.wall != nil {
			if err := g.wall.remove(); err != nil {
				g.logger.Warn("egress: remove host firewall chain", "error", err)
			}
		}
		g.removeNetwork()
	})
}

// createNetwork creates the instance's internal network, bridge interface
// bridge, and returns its gateway address. A network of the same name left
// by an earlier run of the same instance id is removed first.
func (g *Gateway) createNetwork(ctx context.Context, bridge string, opts Options) (netip.Addr, error) {
	if err := g.docker.NetworkRemove(ctx, g.name); err != nil && !cerrdefs.IsNotFound(err) {
		return netip.Addr{}, fmt.Errorf("egress: remove stale network %s: %w", g.name, err)
	}
	created, err := g.docker.NetworkCreate(ctx, g.name, network.CreateOptions{
		Driver:   "bridge",
		Internal: true,
		Labels: map[string]string{
			labelManaged: "true", labelKind: kindEgress, labelInstance: opts.Instance, labelLock: opts.LockPath,
		},
		Options: map[string]string{
			"com.docker.network.bridge.name":       bridge,
			"com.docker.network.bridge.enable_icc": "false",
		},
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("egress: create network %s: %w", g.name, err)
	}
	info, err := g.docker.NetworkInspect(ctx, created.ID, network.InspectOptions{})
	if err != nil {
		g.removeNetwork()
		return netip.Addr{}, fmt.Errorf("egress: inspect network %s: %w", g.name, err)
	}
	for _, c := range info.IPAM.Config {
		if gw, err := netip.ParseAddr(c.Gateway); err == nil && gw.Is4() {
			return gw, nil
		}
	}
	g.removeNetwork()
	return netip.Addr{}, fmt.Errorf("egress: network %s has no IPv4 gateway", g.name)
}

func (g *Gateway) removeNetwork() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.docker.NetworkRemove(ctx, g.name); err != nil && !cerrdefs.IsNotFound(err) {
		g.logger.Warn("egress: remove network", "network", g.name, "error", err)
	}
}

// Reap removes the egress networks and firewall chains of tako instances
// that are gone, as gone reports from their lock files.
func Reap(ctx context.Context, docker DockerAPI, gone func(lockPath string) bool) error {
	list, err := docker.NetworkList(ctx, network.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", labelKind+"="+kindEgress)),
	})
	if err != nil {
		return fmt.Errorf("egress: list networks: %w", err)
	}
	var errs []error
	for _, n := range list {
		lock, inst := n.Labels[labelLock], n.Labels[labelInstance]
		if lock == "" || len(inst) < 8 || !gone(lock) {
			continue
		}
		if err := docker.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("egress: remove network %s: %w", n.Name, err))
		}
		if err := removeChain("tkeg"+inst[:8], chainName(inst[:8])); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b)
}
