package api

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tako-run/tako/jobs"
)

func TestArtifact(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	exec := fs.record(finishedExecution())
	sum := strings.Repeat("ab", 32)
	content := "col\n1\n2\n"
	for _, a := range []jobs.ArtifactContent{
		{Artifact: jobs.Artifact{Name: "report.json", SHA256: sum, SizeBytes: int64(len(content))}, Content: []byte(content)},
		{Artifact: jobs.Artifact{Name: "data.tako-unknown-ext", SHA256: sum}, Content: []byte("x")},
		{Artifact: jobs.Artifact{Name: `we"ird.bin`, SHA256: sum}, Content: []byte("x")},
		{Artifact: jobs.Artifact{Name: "résumé 📄.pdf", SHA256: sum}, Content: []byte("x")},
		{Artifact: jobs.Artifact{Name: "empty"}, Content: []byte{}}, // no stored sum: computed
		{Artifact: jobs.Artifact{Name: "..x", SHA256: sum}, Content: []byte("hidden")},
	} {
		fs.addArtifact(exec.ID, &a)
	}
	s := newTestServer(t, fs, nil, Limits{})
	base := "/jobs/" + exec.ID + "/artifacts/"
	etag := `"` + sum + `"`

	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, "GET", base+"report.json", "", nil)
		if r.status != http.StatusOK || string(r.body) != content {
			t.Fatalf("status %d body %q", r.status, r.body)
		}
		want := map[string]string{
			"ETag":                etag,
			"Content-Type":        "application/json",
			"Content-Disposition": `attachment; filename="report.json"`,
			"Content-Length":      strconv.Itoa(len(content)),
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s %q, want %q", k, got, v)
			}
		}
	})
	t.Run("HEAD has the headers and no body", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, "HEAD", base+"report.json", "", nil)
		if r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("status %d body %q", r.status, r.body)
		}
		if r.header.Get("ETag") != etag || r.header.Get("Content-Length") != strconv.Itoa(len(content)) ||
			r.header.Get("Content-Type") != "application/json" || r.header.Get("Content-Disposition") == "" {
			t.Errorf("headers %v", r.header)
		}
	})
	t.Run("headers by name", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, ctype, disposition string
		}{
			{"data.tako-unknown-ext", "application/octet-stream", `attachment; filename="data.tako-unknown-ext"`},
			{"we%22ird.bin", "application/octet-stream", `attachment; filename="we\"ird.bin"`},
			{"r%C3%A9sum%C3%A9%20%F0%9F%93%84.pdf", "application/pdf", `attachment; filename="r_sum_ _.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%F0%9F%93%84.pdf`},
		}
		for _, tt := range tests {
			r := do(t, s, "GET", base+tt.name, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", tt.name, r.status, r.body)
			}
			if got := r.header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("%s: Content-Type %q, want %q", tt.name, got, tt.ctype)
			}
			if got := r.header.Get("Content-Disposition"); got != tt.disposition {
				t.Errorf("%s: Content-Disposition %q, want %q", tt.name, got, tt.disposition)
			}
		}
		r := do(t, s, "GET", base+"empty", "", nil)
		const emptySum = `"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"`
		if r.status != http.StatusOK || r.header.Get("ETag") != emptySum || r.header.Get("Content-Length") != "0" {
			t.Errorf("empty: %d %v", r.status, r.header)
		}
	})
	t.Run("If-None-Match", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			header string
			status int
		}{
			{etag, 304},
			{"*", 304},
			{`"other", ` + etag, 304},
			{`"other",` + etag + `,"more"`, 304},
			{"W/" + etag, 304},
			{`W/"other", W/` + etag, 304},
			{`"other"`, 200},
			{sum, 200}, // unquoted is not the tag
			{`W/"other"`, 200},
			{"", 200},
		}
		for _, tt := range tests {
			for _, method := range []string{"GET", "HEAD"} {
				h := map[string]string{}
				if tt.header != "" {
					h["If-None-Match"] = tt.header
				}
				r := do(t, s, method, base+"report.json", "", h)
				if r.status != tt.status {
					t.Errorf("%s If-None-Match %q: status %d, want %d", method, tt.header, r.status, tt.status)
				}
				if r.header.Get("ETag") != etag {
					t.Errorf("%s If-None-Match %q: ETag %q", method, tt.header, r.header.Get("ETag"))
				}
				if tt.status == 304 && len(r.body) != 0 {
					t.Errorf("304 with a body: %q", r.body)
				}
			}
		}
	})
	t.Run("traversal and odd names are 400", func(t *testing.T) {
		t.Parallel()
		// A service of its own, to count the lookups of this subtest only.
		fs := &fakeService{}
		s := newTestServer(t, fs, nil, Limits{})
		names := []string{
			"../x", "..", ".", "%2e%2e", "%2E%2E", "%2e", "..%2Fetc%2Fpasswd", "..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
			"../../etc/passwd", "a/b", "a%2Fb", "a%5Cb", `a\b`, ".hidden", "%2ehidden", "..x", "a%00b", "a%0Ab", "a%7Fb",
			"a%C2%85b", "%ff", "", strings.Repeat("n", 256),
		}
		for _, name := range names {
			for _, method := range []string{"GET", "HEAD"} {
				r := do(t, s, method, base+name, "", nil)
				if r.status != http.StatusBadRequest {
					t.Errorf("%s %q: status %d, want 400: %s", method, name, r.status, r.body)
					continue
				}
				if method == "GET" {
					if d := checkErrorBody(t, r); d != "Invalid artifact path" {
						t.Errorf("%q: detail %q", name, d)
					}
				}
			}
		}
		if n := fs.count("Artifact"); n != 0 {
			t.Errorf("bad names reached the service %d times", n)
		}
	})
}

func TestArtifactNotFound(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	exec := fs.record(finishedExecution())
	s := newTestServer(t, fs, nil, Limits{})
	for path, detail := range map[string]string{
		"/jobs/" + exec.ID + "/artifacts/missing.txt":                     "Artifact not found",
		"/jobs/0195c3a8-0000-7000-8000-0000000fffff/artifacts/report.txt": "Job not found",
	} {
		checkError(t, do(t, s, "GET", path, "", nil), http.StatusNotFound, detail)
		if r := do(t, s, "HEAD", path, "", nil); r.status != http.StatusNotFound || len(r.body) != 0 {
			t.Errorf("HEAD %s: %d %q", path, r.status, r.body)
		}
	}
}

// TestArtifactName covers raw names an HTTP client refuses to send.
func TestArtifactName(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"%zz", "%", "a%2", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "a\x00b", "\x7f", "\u0085"} {
		if name, err := artifactName(raw); jobs.ErrorCodeOf(err) != jobs.EMALFORMED {
			t.Errorf("artifactName(%q) = %q, %v; want EMALFORMED", raw, name, err)
		}
	}
	for raw, want := range map[string]string{"report.txt": "report.txt", "a%20b.csv": "a b.csv", "x..y": "x..y", "%25zz": "%zz"} {
		if name, err := artifactName(raw); err != nil || name != want {
			t.Errorf("artifactName(%q) = %q, %v; want %q", raw, name, err, want)
		}
	}
}
