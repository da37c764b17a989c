package takotest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/tako-run/tako/internal/takotest"
)

// TestStart starts a real tako with an extra setting and checks that it
// took it: the API key is read from the header WithEnv names.
func TestStart(t *testing.T) {
	srv := takotest.Start(t, takotest.WithEnv("TAKO_AUTH_HEADER=X-Test-Key"))
	if _, err := os.Stat(filepath.Join(srv.Root, "tako.yaml")); err != nil {
		t.Errorf("root %s: %v", srv.Root, err)
	}
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"X-Test-Key", http.StatusOK},
		{"X-API-Key", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/job-types", nil)
		req.Header.Set(tc.header, srv.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("key in %s: status %d, want %d", tc.header, resp.StatusCode, tc.want)
		}
	}
}
