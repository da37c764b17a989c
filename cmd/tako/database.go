package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/runner/dbcontainer"
	"github.com/tako-run/tako/runner/images"
)

// openDatabase connects to the configured database, or, when database.url
// is empty, to the local tako-postgres container (started, and its image
// built, if needed). It applies the migrations before returning the pool.
func openDatabase(ctx context.Context, dc *client.Client, b *images.Builder, cfg *config.Config, work string, logger *slog.Logger, progress io.Writer) (*pgxpool.Pool, error) {
	url := cfg.Database.URL
	if url == "" {
		var err error
		if url, err = autoStartDatabase(ctx, dc, b, cfg, work, logger, progress); err != nil {
			return nil, err
		}
	}
	pool, err := postgres.Connect(ctx, url, cfg.Database.MaxConns)
	if err != nil {
		return nil, err
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return pool, nil
}

// autoStartDatabase starts or reuses the tako-postgres container and
// returns its URL. Its password is a random one kept in the work directory.
func autoStartDatabase(ctx context.Context, dc *client.Client, b *images.Builder, cfg *config.Config, work string, logger *slog.Logger, progress io.Writer) (string, error) {
	a := cfg.Database.AutoStart
	image, err := b.EnsurePostgres(ctx, a.Image)
	if err != nil {
		return "", fmt.Errorf("database image: %w", err)
	}
	dir := filepath.Join(work, "database")
	password, err := dbcontainer.Password(filepath.Join(dir, a.Container+".password"))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "==> database: no database.url set, using the %s container on 127.0.0.1:%d\n", a.Container, a.Port)
	return dbcontainer.Ensure(ctx, dc, dbcontainer.Options{
		Database: "tako",
		Image:    image,
		Name:     a.Container,
		LockFile: filepath.Join(dir, a.Container+".lock"),
		Password: password,
		Port:     a.Port,
		Volume:   a.Volume,
	}, logger)
}
