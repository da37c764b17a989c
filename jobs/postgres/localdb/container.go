// Package localdb is the local PostgreSQL tako runs for itself when no
// database.url is configured: its image (EnsureImage), the official
// postgres image or tako's own, built from Debian's packages on the
// executor image; and its container (Ensure), "tako-postgres" on
// 127.0.0.1:55432 with its data in a named volume, as the original Tako VM
// does. Both images follow the same environment contract, so the
// container works with either.
//
// Job and build containers must never reach it: it sits alone on a Docker
// network of its own (Docker keeps bridge networks apart), is published on
// the host's loopback only, and its superuser's password is a random one
// the caller keeps (see Password).
package localdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/go-connections/nat"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/tako-run/tako/internal/dockerlabel"
)

// DockerAPI is the part of the Docker client Ensure uses.
// *client.Client from github.com/docker/docker/client satisfies it.
type DockerAPI interface {
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkInspect(ctx context.Context, networkID string, options network.InspectOptions) (network.Inspect, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	VolumeCreate(ctx context.Context, options volume.CreateOptions) (volume.Volume, error)
	VolumeInspect(ctx context.Context, volumeID string) (volume.Volume, error)
}

// Options describe the database container. Zero values get the defaults
// listed per field; Image is required.
type Options struct {
	// Name is the container's name; default "tako-postgres".
	Name string
	// Image is the PostgreSQL image to create the container from, the ref
	// EnsureImage returns.
	Image string
	// Port is the host port on 127.0.0.1 the server is published on;
	// default 55432.
	Port int
	// Volume is the named volume that holds the data directory; default
	// "tako-postgres-data".
	Volume string
	// Password is the superuser's (postgres) password, required: see
	// Password (the function). It takes effect when the volume is
	// initialised; a volume initialised with LegacyPassword is moved to it.
	Password string
	// Network is the Docker network the container alone joins; default
	// Name (networks and containers are named apart).
	Network string
	// LockFile is where the processes that may start the container at
	// once take turns, required: tako's work directory, which the tako
	// processes of a host share.
	LockFile string
	// Database is the database created when the volume is initialised and
	// the one the returned URL names; default "tako".
	Database string
	// StartTimeout bounds the wait for the server to accept connections;
	// default 60s.
	StartTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultName     = "tako-postgres"
	DefaultPort     = 55432
	DefaultVolume   = "tako-postgres-data"
	DefaultDatabase = "tako"
	// LegacyPassword is the well-known password of volumes initialised by
	// the original, and by tako before it kept a random one. Ensure
	// replaces it with Password.
	LegacyPassword = "postgres"
	DefaultTimeout = 60 * time.Second
)

// Labels on the container and the volume Ensure creates.
const (
	labelManaged = dockerlabel.Managed
	labelKind    = dockerlabel.Kind
	kindDatabase = "database"

	// dataDir is where both images keep the data directory.
	dataDir = "/var/lib/postgresql/data"
	// user is the superuser the URL connects as.
	user = "postgres"
)

// pgPort is the server's port inside the container.
const pgPort = nat.Port("5432/tcp")

// Poll intervals while waiting for the server.
const (
	pollInterval   = 250 * time.Millisecond
	connectTimeout = 2 * time.Second
	// otherCreateTimeout bounds the wait for a container another process
	// is creating under our name.
	otherCreateTimeout = 10 * time.Second
)

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Volume == "" {
		o.Volume = DefaultVolume
	}
	if o.Network == "" {
		o.Network = o.Name
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultTimeout
	}
	return o
}

func (o Options) validate() error {
	if o.Image == "" {
		return errors.New("database container: no image given")
	}
	if o.Password == "" {
		return errors.New("database container: no password given")
	}
	if o.LockFile == "" {
		return errors.New("database container: no lock file given")
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("database container: port %d is not between 1 and 65535", o.Port)
	}
	return nil
}

// Ensure makes sure the PostgreSQL container opts.Name runs and accepts
// connections, and returns its URL,
// "postgres://postgres:<password>@127.0.0.1:<port>/<database>?sslmode=disable".
//
// An existing container of that name is reused (started if it is stopped),
// even when it runs another image or publishes another port: then a warning
// is logged and the URL uses the port it publishes. Otherwise Ensure creates
// the volume (if missing) and the container, published only on 127.0.0.1,
// with restart policy unless-stopped, both labelled tako.managed=true. A
// container it created but cannot start is removed again; the volume is
// kept, since it may hold data. Several processes may call Ensure at once:
// the one whose create loses the race reuses the winner's container.
//
// It waits up to opts.StartTimeout for the server to accept a connection.
// Every error is one sentence that says what to do.
func Ensure(ctx context.Context, docker DockerAPI, opts Options, logger *slog.Logger) (dbURL string, err error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return "", err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "dbcontainer", "container", opts.Name)
	start := time.Now()

	// Processes starting at once take turns: creating the network and the
	// container is not atomic.
	unlock, err := lock(opts.LockFile)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := ensureNetwork(ctx, docker, opts.Network, logger); err != nil {
		return "", err
	}
	info, found, err := inspect(ctx, docker, opts.Name)
	if err != nil {
		return "", err
	}
	if found && !alone(info, opts.Network) {
		// Made before the database had a network of its own: on the default
		// bridge, next to every bridge job. Its data is in the volume.
		logger.Warn("database container shares a network with other containers; recreating it on its own network, data kept", "network", opts.Network)
		if err := docker.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("remove the %s container to recreate it on its own network: %w", opts.Name, err)
		}
		found = false
	}
	if !found {
		info, err = create(ctx, docker, opts, logger)
		if err != nil {
			return "", err
		}
	} else if info.Config != nil && info.Config.Image != opts.Image {
		logger.Warn("database container runs another image; reusing it", "image", info.Config.Image, "configured_image", opts.Image)
	}

	if info.State == nil || !info.State.Running {
		if err := docker.ContainerStart(ctx, info.ID, container.StartOptions{}); err != nil {
			return "", fmt.Errorf("start the %s container: %w; see `docker logs %s`", opts.Name, err, opts.Name)
		}
		logger.Info("database container started", "container_id", info.ID)
		if info, _, err = inspect(ctx, docker, info.ID); err != nil {
			return "", err
		}
	}

	host, port, err := published(info, opts.Name)
	if err != nil {
		return "", err
	}
	if port != opts.Port {
		logger.Warn("database container publishes another port; reusing it", "port", port, "configured_port", opts.Port)
	}
	address := net.JoinHostPort(host, strconv.Itoa(port))
	dbURL = databaseURL(address, opts.Password, opts.Database)
	err = waitReady(ctx, docker, info.ID, dbURL, opts)
	if errors.Is(err, errRejected) && opts.Password != LegacyPassword {
		// A volume from before random passwords: move it to ours.
		if rerr := rotate(ctx, databaseURL(address, LegacyPassword, opts.Database), opts.Password); rerr == nil {
			logger.Info("database password replaced: the volume had the well-known legacy password")
			err = waitReady(ctx, docker, info.ID, dbURL, opts)
		}
	}
	if err != nil {
		return "", err
	}
	logger.Info("database container ready", "container_id", info.ID, "port", port, "seconds", time.Since(start).Seconds())
	return dbURL, nil
}

// databaseURL is the URL of database at address as the superuser.
func databaseURL(address, password, database string) string {
	return (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     address,
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}).String()
}

// rotate connects to legacyURL and sets the superuser's password.
func rotate(ctx context.Context, legacyURL, password string) error {
	cfg, err := pgx.ParseConfig(legacyURL)
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = connectTimeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// ALTER USER takes no parameters: quote the password as a literal.
	_, err = conn.Exec(ctx, "ALTER USER "+user+" WITH PASSWORD "+quoteLiteral(password))
	return err
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// alone reports whether the container is on network and no other.
func alone(info container.InspectResponse, network string) bool {
	if info.NetworkSettings == nil || len(info.NetworkSettings.Networks) != 1 {
		return false
	}
	_, ok := info.NetworkSettings.Networks[network]
	return ok
}

// ensureNetwork creates the database's network unless it exists. It is an
// ordinary bridge, so that the port can be published on loopback; no other
// container joins it, and Docker keeps bridge networks apart. Callers hold
// the lock: the engine's check for a duplicate name races with a concurrent
// create.
func ensureNetwork(ctx context.Context, docker DockerAPI, name string, logger *slog.Logger) error {
	if _, err := docker.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", name, err)
	}
	if _, err := docker.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{labelManaged: "true", labelKind: kindDatabase},
	}); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	logger.Info("database network created", "network", name)
	return nil
}

// lock takes an exclusive lock on file, waiting for it, and returns its
// release.
func lock(file string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("database lock: %w", err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("database lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("database lock %s: %w", file, err)
	}
	return func() { f.Close() }, nil
}

// inspect looks a container up; a missing container is not an error.
func inspect(ctx context.Context, docker DockerAPI, name string) (container.InspectResponse, bool, error) {
	info, err := docker.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return info, false, nil
	}
	if err != nil {
		return info, false, fmt.Errorf("inspect container %s: %w", name, err)
	}
	return info, true, nil
}

// create creates the volume if needed and the container, and starts the
// container. When another process created the container first, it returns
// that one, not necessarily started.
func create(ctx context.Context, docker DockerAPI, opts Options, logger *slog.Logger) (container.InspectResponse, error) {
	if err := ensureVolume(ctx, docker, opts.Volume, logger); err != nil {
		return container.InspectResponse{}, err
	}
	lbls := map[string]string{labelManaged: "true", labelKind: kindDatabase}
	created, err := docker.ContainerCreate(ctx, &container.Config{
		Image: opts.Image,
		Env: []string{
			"POSTGRES_USER=" + user,
			"POSTGRES_PASSWORD=" + opts.Password,
			"POSTGRES_DB=" + opts.Database,
		},
		ExposedPorts: nat.PortSet{pgPort: {}},
		Labels:       lbls,
	}, &container.HostConfig{
		// Only loopback, and only its own network: no job or build
		// container can reach it.
		PortBindings:  nat.PortMap{pgPort: {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(opts.Port)}}},
		NetworkMode:   container.NetworkMode(opts.Network),
		Binds:         []string{opts.Volume + ":" + dataDir},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}, nil, nil, opts.Name)
	if cerrdefs.IsConflict(err) {
		// Another tako process won the race; use its container.
		info, err := awaitOther(ctx, docker, opts.Name)
		if err != nil {
			return info, err
		}
		logger.Info("database container created by another process", "container_id", info.ID)
		return info, nil
	}
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("create the %s container from %s: %w", opts.Name, opts.Image, err)
	}
	logger.Info("database container created", "container_id", created.ID, "image", opts.Image, "port", opts.Port, "volume", opts.Volume)

	if err := docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		// Undo the create so that the next attempt starts afresh, perhaps
		// with another port.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := docker.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
			logger.Warn("remove container failed", "container_id", created.ID, "error", rerr)
		}
		return container.InspectResponse{}, fmt.Errorf("start the %s container on 127.0.0.1:%d: %w", opts.Name, opts.Port, err)
	}
	logger.Info("database container started", "container_id", created.ID)
	info, _, err := inspect(ctx, docker, created.ID)
	return info, err
}

// awaitOther returns the container another process is creating under name.
// The engine reserves the name before the container can be inspected, so
// for a moment the name is taken but nothing is found.
func awaitOther(ctx context.Context, docker DockerAPI, name string) (container.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, otherCreateTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval / 5)
	defer ticker.Stop()
	for {
		info, found, err := inspect(ctx, docker, name)
		if err == nil && found {
			return info, nil
		}
		if err != nil && ctx.Err() == nil {
			return info, err
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return info, fmt.Errorf("create the %s container: the name is taken but no such container appeared within %s; try again", name, otherCreateTimeout)
		}
	}
}

// ensureVolume creates the named volume unless it exists.
func ensureVolume(ctx context.Context, docker DockerAPI, name string, logger *slog.Logger) error {
	_, err := docker.VolumeInspect(ctx, name)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	// Creating a volume that exists meanwhile is not an error.
	if _, err := docker.VolumeCreate(ctx, volume.CreateOptions{
		Name:   name,
		Labels: map[string]string{labelManaged: "true", labelKind: kindDatabase},
	}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	logger.Info("database volume created", "volume", name)
	return nil
}

// published returns the host address and port the running container
// publishes 5432/tcp on. A wildcard address becomes 127.0.0.1.
func published(info container.InspectResponse, name string) (string, int, error) {
	var bindings []nat.PortBinding
	if info.NetworkSettings != nil {
		bindings = info.NetworkSettings.Ports[pgPort]
	}
	for _, b := range bindings {
		port, err := strconv.Atoi(b.HostPort)
		if err != nil || port == 0 {
			continue
		}
		host := b.HostIP
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		return host, port, nil
	}
	return "", 0, fmt.Errorf("the %s container does not publish port 5432 to the host; remove it (`docker rm -f %s`) so that tako recreates it, or set database.url", name, name)
}

// waitReady polls until a pgx connection to dbURL succeeds, the server
// rejects tako's credentials, the container stops, or opts.StartTimeout
// passes.
func waitReady(ctx context.Context, docker DockerAPI, id, dbURL string, opts Options) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("database container url: %w", err)
	}
	cfg.ConnectTimeout = connectTimeout
	wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var lastErr error
	for {
		err := ping(wctx, cfg)
		if err == nil {
			return nil
		}
		// An attempt cut short by the deadline says less than the one
		// before it.
		if lastErr == nil || wctx.Err() == nil {
			lastErr = err
		}
		if rejected(lastErr) {
			return fmt.Errorf("the %s container rejects tako's credentials (%v); its volume %s was probably initialised with another password or without database %q: set database.url, or remove the container and the volume to start afresh (this deletes its data): %w",
				opts.Name, lastErr, opts.Volume, opts.Database, errRejected)
		}
		info, found, err := inspect(wctx, docker, id)
		switch {
		case err != nil && wctx.Err() == nil:
			return err
		case err == nil && !found:
			return fmt.Errorf("the %s container was removed while tako waited for it to accept connections", opts.Name)
		case err == nil && info.State != nil && !info.State.Running && !info.State.Restarting:
			return fmt.Errorf("the %s container exited with code %d before accepting connections; see `docker logs %s`", opts.Name, info.State.ExitCode, opts.Name)
		}
		select {
		case <-ticker.C:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("wait for the %s container: %w", opts.Name, ctx.Err())
			}
			return fmt.Errorf("the %s container did not accept connections within %gs: %v; see `docker logs %s`",
				opts.Name, opts.StartTimeout.Seconds(), lastErr, opts.Name)
		}
	}
}

// ping opens one connection with cfg and checks it.
func ping(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	return conn.Ping(ctx)
}

// errRejected marks a server that refused tako's credentials.
var errRejected = errors.New("credentials rejected")

// rejected reports whether the server answered but refused tako's
// credentials or database, which waiting does not cure.
func rejected(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "3D000" || (len(pgErr.Code) == 5 && pgErr.Code[:2] == "28")
}

// Password returns the database's superuser password kept in file,
// creating a random one (mode 0600) the first time.
func Password(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		if p := strings.TrimSpace(string(b)); p != "" {
			return p, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("database password: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("database password: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("database password: %w", err)
	}
	p := hex.EncodeToString(raw)
	// Written aside, then linked into place: a process racing this one
	// either finds no file or the whole of it, and whoever links first wins.
	tmp := fmt.Sprintf("%s.%d.tmp", file, os.Getpid())
	if err := os.WriteFile(tmp, []byte(p+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("database password: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, file); errors.Is(err, os.ErrExist) {
		return Password(file)
	} else if err != nil {
		return "", fmt.Errorf("database password: %w", err)
	}
	return p, nil
}
