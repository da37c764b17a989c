package dispatch

import (
	"testing"

	"github.com/tako-run/tako/internal/leaktest"
)

// TestMain fails the package's tests when a goroutine outlives them: the
// queue, the heartbeat and the notifier must stop with the dispatcher.
func TestMain(m *testing.M) { leaktest.Main(m) }
