package bench

import (
	"testing"

	"github.com/tako-run/tako/internal/leaktest"
)

// TestMain fails the tests when a goroutine outlives them: a burst's
// requests or a worker left behind.
func TestMain(m *testing.M) { leaktest.Main(m) }
