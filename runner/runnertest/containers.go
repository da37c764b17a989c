package runnertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// testLabels mark what these helpers create, for the reapers of tests
// that were killed.
var testLabels = map[string]string{"tako.managed": "true", "tako.test": "network"}

// Network creates a bridge network of the test's own, removed when the
// test ends, and returns its name and IPv4 subnet.
func Network(t testing.TB, dc *client.Client, prefix string) (name string, subnet netip.Prefix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name = prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	created, err := dc.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: testLabels})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.NetworkRemove(context.Background(), created.ID) })
	info, err := dc.NetworkInspect(ctx, created.ID, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range info.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Addr().Is4() {
			return name, p
		}
	}
	t.Fatalf("network %s has no IPv4 subnet", name)
	return "", netip.Prefix{}
}

// Container is a container a test starts.
type Container struct {
	Image   string
	Cmd     []string
	Env     []string
	Network string // the network it joins
	// User defaults to nobody (65534:65534).
	User string
	// CapDrop ALL when set.
	DropCaps bool
	// Publish publishes these container ports on all of the host's
	// addresses, at ports the engine picks (see PublishedPort).
	Publish []int
}

// Start creates and starts c, removed by force when the test ends, and
// returns its id and its address on c.Network.
func Start(t testing.TB, dc *client.Client, c Container) (id string, addr netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	user := c.User
	if user == "" {
		user = "65534:65534"
	}
	host := &container.HostConfig{NetworkMode: container.NetworkMode(c.Network)}
	if c.DropCaps {
		host.CapDrop = []string{"ALL"}
	}
	config := &container.Config{Image: c.Image, Cmd: c.Cmd, Env: c.Env, User: user, Labels: testLabels}
	for _, p := range c.Publish {
		port := nat.Port(strconv.Itoa(p) + "/tcp")
		if config.ExposedPorts == nil {
			config.ExposedPorts, host.PortBindings = nat.PortSet{}, nat.PortMap{}
		}
		config.ExposedPorts[port] = struct{}{}
		host.PortBindings[port] = []nat.PortBinding{{HostIP: "0.0.0.0"}}
	}
	created, err := dc.ContainerCreate(ctx, config, host, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dc.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := dc.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := dc.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := info.NetworkSettings.Networks[c.Network]; ok {
		addr, _ = netip.ParseAddr(n.IPAddress)
	}
	if !addr.IsValid() {
		t.Fatalf("container %s has no address on %s", created.ID, c.Network)
	}
	return created.ID, addr
}

// PublishedPort is the host port that container port of container id is
// published at.
func PublishedPort(t testing.TB, dc *client.Client, id string, port int) int {
	t.Helper()
	info, err := dc.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range info.NetworkSettings.Ports[nat.Port(strconv.Itoa(port)+"/tcp")] {
		if n, err := strconv.Atoi(b.HostPort); err == nil && n > 0 {
			return n
		}
	}
	t.Fatalf("container %s does not publish port %d", id, port)
	return 0
}

// WaitListening waits up to three minutes until addr accepts TCP
// connections on each of ports.
func WaitListening(t testing.TB, addr netip.Addr, ports ...int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(port)), 5*time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on %s:%d: %v", addr, port, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// SelfSigned returns a self-signed certificate for name and its key, in
// PEM.
func SelfSigned(t testing.TB, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}
