package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Scratch is a schema of its own on a tako database, holding tako's tables
// and no records: what the store's statements cost on that server can be
// measured there without touching its records (tako bench --floors). Its
// Store works in that schema only, on logged tables like the real ones.
// Drop removes the schema and everything written to it.
type Scratch struct {
	// Store is the store on the scratch schema.
	Store *Store

	admin  *pgxpool.Pool // outside the schema: creates and drops it
	pool   *pgxpool.Pool // Store's, its search_path the schema
	schema string
}

// OpenScratch creates the schema tako_scratch_<random> on the database at
// url, applies tako's migrations in it (River's tables are not needed),
// and returns it. Drop must be called, even when the caller's context has
// ended. It fails as Connect does, or when the user may not create a
// schema there.
func OpenScratch(ctx context.Context, url string) (_ *Scratch, err error) {
	admin, err := Connect(ctx, url, 1)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	s := &Scratch{admin: admin, schema: "tako_scratch_" + hex.EncodeToString(b)}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create scratch schema: %w", err)
	}
	defer func() {
		if err != nil {
			s.Drop(context.WithoutCancel(ctx))
		}
	}()
	cfg, err := poolConfig(url, 2)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = s.schema
	if s.pool, err = connect(ctx, cfg); err != nil {
		return nil, err
	}
	ms, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("scratch schema: %w", err)
	}
	err = s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		return applyMigrations(ctx, c.Conn(), ms)
	})
	if err != nil {
		return nil, fmt.Errorf("scratch schema: %w", err)
	}
	s.Store = NewStore(s.pool)
	return s, nil
}

// Drop closes the scratch store and drops its schema with everything in
// it. Call it once.
func (s *Scratch) Drop(ctx context.Context) error {
	if s.pool != nil {
		s.pool.Close()
	}
	defer s.admin.Close()
	if _, err := s.admin.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop scratch schema %s: %w", s.schema, err)
	}
	return nil
}
