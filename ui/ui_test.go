package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func newApp(t *testing.T) *fiber.App {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if err := Register(app, Options{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return app
}

func get(t *testing.T, app *fiber.App, path string) (*http.Response, string) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest(http.MethodGet, path, nil), -1)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", path, err)
	}
	return resp, string(b)
}

// inline finds what the CSP would refuse and what could reach another
// origin: a script element without src, an event handler or style
// attribute, a javascript: URL, or an absolute URL.
var inline = regexp.MustCompile(`(?i)<script>|<script\s+(?:[^>]*\s)?type=|\son[a-z]+\s*=|\sstyle\s*=|javascript:|https?://|src="//|href="//`)

func TestPages(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	tests := []struct {
		path, title string
		status      int
	}{
		{"/ui", "Executions", http.StatusOK},
		{"/ui/", "Executions", http.StatusOK},
		{"/ui/executions/0195c3a8-0000-7000-8000-000000000003", "Execution", http.StatusOK},
		{"/ui/run", "Run", http.StatusOK},
		{"/ui/job-types", "Job types", http.StatusOK},
		{"/ui/health", "Health", http.StatusOK},
		{"/ui/nowhere", "Not found", http.StatusNotFound},
		{"/ui/static/nothing.js", "Not found", http.StatusNotFound},
		{"/ui/static/..%2fui.go", "Not found", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, app, tt.path)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != CSP {
				t.Errorf("CSP %q, want %q", got, CSP)
			}
			if !strings.Contains(body, "<title>"+tt.title+" · tako</title>") {
				t.Errorf("no title %q in\n%s", tt.title, body)
			}
			if m := inline.FindString(body); m != "" {
				t.Errorf("the page holds %q, which the CSP refuses or which leaves the origin", m)
			}
			if tt.status == http.StatusNotFound && !strings.Contains(body, `href="/ui">Go back to the executions`) {
				t.Errorf("the 404 page does not link back to the list")
			}
		})
	}
}

// TestIDIsEscaped checks that an execution id in the path reaches the page
// as text in an attribute, never as markup.
func TestIDIsEscaped(t *testing.T) {
	t.Parallel()
	_, body := get(t, newApp(t), `/ui/executions/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E`)
	if strings.Contains(body, "<script>alert") {
		t.Fatalf("the id went into the page as markup:\n%s", body)
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	for path, ctype := range map[string]string{"/ui/static/console.js": "text/javascript", "/ui/static/console.css": "text/css"} {
		resp, body := get(t, app, path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || body == "" {
			t.Errorf("GET %s: status %d, Content-Type %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	// No asset names another origin, and the script never writes HTML.
	err := fs.WalkDir(assets, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, name)
		if err != nil {
			return err
		}
		if m := regexp.MustCompile(`https?://|url\(`).Find(b); m != nil {
			t.Errorf("%s refers to %q", name, m)
		}
		if strings.HasSuffix(name, ".js") {
			if m := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`).Find(b); m != nil {
				t.Errorf("%s uses %s: the console inserts text only", name, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIsConsolePath(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{"/ui": true, "/ui/": true, "/ui/run": true, "/uix": false, "/u": false, "/": false, "/executions": false} {
		if got := IsConsolePath(p); got != want {
			t.Errorf("IsConsolePath(%q) = %v, want %v", p, got, want)
		}
	}
}
