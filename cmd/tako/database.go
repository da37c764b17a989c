package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"

	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobs/postgres/localdb"
	"github.com/tako-run/tako/runner/images"
)

// openDatabase connects to the configured database, or, when database.url
// is empty, to the local tako-postgres container (started, and its image
// built, if needed). It applies the migrations before returning the pool.
func openDatabase(ctx context.Context, dc *client.Client, b *images.Builder, cfg *config.Config, work string, logger *slog.Logger, progress io.Writer) (*pgxpool.Pool, error) {
	dbURL := cfg.Database.URL
	if dbURL == "" {
		m := newManagedDatabase(cfg, work)
		fmt.Fprintf(progress, "==> database: no database.url set, using the %s container on 127.0.0.1:%d\n", m.Container, m.Port)
		var err error
		if dbURL, err = autoStartDatabase(ctx, dc, b, m, logger); err != nil {
			return nil, err
		}
	}
	pool, err := postgres.Connect(ctx, dbURL, cfg.Database.MaxConns)
	if err != nil {
		return nil, err
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return pool, nil
}

// managedDatabase is the PostgreSQL container tako runs when database.url
// is empty: database.auto_start's settings, and the files in the work
// directory that go with the container, its password and the lock the
// processes starting it take turns on. tako server and tako dev both
// derive it from the configuration, so they act on the same container.
type managedDatabase struct {
	config.AutoStartConfig
	// PasswordFile keeps the superuser's random password (mode 0600).
	PasswordFile string
	// LockFile serialises the processes that start the container.
	LockFile string
}

// newManagedDatabase returns the managed database cfg describes, its files
// in the work directory work.
func newManagedDatabase(cfg *config.Config, work string) managedDatabase {
	a := cfg.Database.AutoStart
	dir := filepath.Join(work, "database")
	return managedDatabase{
		AutoStartConfig: a,
		PasswordFile:    filepath.Join(dir, a.Container+".password"),
		LockFile:        filepath.Join(dir, a.Container+".lock"),
	}
}

// managedUser is the role localdb.Ensure's URL connects as.
const managedUser = "postgres"

// url returns the URL of the managed database published on port, the one
// localdb.Ensure returns for it.
func (m managedDatabase) url(port int, password string) string {
	return (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(managedUser, password),
		Host:     "127.0.0.1:" + strconv.Itoa(port),
		Path:     "/" + localdb.DefaultDatabase,
		RawQuery: "sslmode=disable",
	}).String()
}

// autoStartDatabase starts or reuses the managed database's container,
// building its image if needed, and returns its URL once it accepts
// connections. Its password is a random one kept in m.PasswordFile.
func autoStartDatabase(ctx context.Context, dc *client.Client, b *images.Builder, m managedDatabase, logger *slog.Logger) (string, error) {
	image, err := localdb.EnsureImage(ctx, b, m.Image)
	if err != nil {
		return "", fmt.Errorf("database image: %w", err)
	}
	password, err := localdb.Password(m.PasswordFile)
	if err != nil {
		return "", err
	}
	return localdb.Ensure(ctx, dc, localdb.Options{
		Database: localdb.DefaultDatabase,
		Image:    image,
		Name:     m.Container,
		LockFile: m.LockFile,
		Password: password,
		Port:     m.Port,
		Volume:   m.Volume,
	}, logger)
}
