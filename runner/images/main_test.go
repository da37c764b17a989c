package images

import (
	"testing"

	"github.com/tako-run/tako/internal/leaktest"
)

// TestMain fails the package's tests when a goroutine outlives them.
func TestMain(m *testing.M) { leaktest.Main(m) }
