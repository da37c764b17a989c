// Package leaktest fails a package's tests when goroutines outlive them.
// Every package of tako that starts goroutines calls Main from its
// TestMain, so a worker, monitor or watcher that is not stopped is a test
// failure.
package leaktest

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// ignored are goroutines that belong to libraries, not to tako, and are
// not leaks: fasthttp's process-wide date updater and its worker pools'
// cleaners, which sleep out their interval after the server stops.
var ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}

// Main runs the tests of m, then, when they passed, looks for goroutines
// still running (after closing the idle keep-alive connections of the
// default HTTP client, which tests share) and fails when there are any.
// It does not return.
func Main(m *testing.M, extra ...goleak.Option) {
	MainAfter(m, func() {}, extra...)
}

// MainAfter is Main for a package whose tests share something that lives
// across them, such as a server: cleanup stops it after the tests and
// before the search.
func MainAfter(m *testing.M, cleanup func(), extra ...goleak.Option) {
	code := m.Run()
	cleanup()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(append(ignored, extra...)...); err != nil {
			fmt.Fprintf(os.Stderr, "leaktest: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
