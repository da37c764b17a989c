package api

import (
	"context"
	"testing"
	"time"

	"github.com/tako-run/tako/internal/leaktest"
)

// TestMain fails the package's tests when a goroutine outlives them: the
// server's health monitor and dependency checks must stop with it.
func TestMain(m *testing.M) { leaktest.Main(m) }

// stopOnCleanup shuts s down when the test ends, as the server's owner
// does: its health monitor and dependency checks stop with it.
func stopOnCleanup(t testing.TB, s *Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shut the server down: %v", err)
		}
	})
}
