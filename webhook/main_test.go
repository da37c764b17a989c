package webhook

import (
	"testing"

	"github.com/tako-run/tako/internal/leaktest"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// test server, slow handler and client connection must be closed.
func TestMain(m *testing.M) { leaktest.Main(m) }
