package api

import (
	"errors"
	"mime"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
)

// FuzzArtifactName feeds arbitrary raw path segments to artifactName, the
// check behind GET /jobs/{id}/artifacts/{name}. The properties: it never
// panics and answers the same twice; a refusal is EMALFORMED with the fixed
// detail, which echoes nothing; an accepted name is the segment decoded,
// a single plain file name (not empty, at most 255 bytes, UTF-8, no '/',
// '\', NUL or other control character, not "." or ".." or hidden) that
// stays inside the directory it is joined to, and that a client reaches by
// escaping it; its Content-Disposition is one header-safe ASCII line that
// gives the exact name back, and its Content-Type is a media type. The
// seeds are in testdata/fuzz/FuzzArtifactName.
func FuzzArtifactName(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		name, err := artifactName(raw)
		if again, err2 := artifactName(raw); again != name || (err == nil) != (err2 == nil) {
			t.Fatalf("artifactName(%q) is not deterministic: %q, %v, then %q, %v", raw, name, err, again, err2)
		}
		if err != nil {
			var je *jobs.Error
			if !errors.As(err, &je) || je.Code != jobs.EMALFORMED || je.Message != invalidArtifactPath || name != "" {
				t.Fatalf("artifactName(%q) = %q, %#v; want \"\" and EMALFORMED %q", raw, name, err, invalidArtifactPath)
			}
			return
		}

		fail := func(why string) {
			t.Helper()
			t.Fatalf("artifactName(%q) accepted %q, but %s", raw, name, why)
		}
		if decoded, err := url.PathUnescape(raw); err != nil || decoded != name {
			fail("it is not the segment decoded")
		}
		switch {
		case name == "" || len(name) > maxArtifactName:
			fail("it is empty or longer than 255 bytes")
		case !utf8.ValidString(name):
			fail("it is not UTF-8")
		case strings.ContainsAny(name, "/\\\x00"):
			fail("it contains a path separator or NUL")
		case strings.IndexFunc(name, unicode.IsControl) >= 0:
			fail("it contains a control character")
		case name == "." || name == ".." || strings.HasPrefix(name, "."):
			fail("it is a dot name or hidden")
		case !filepath.IsLocal(name):
			fail("it is not local to a directory")
		}
		const dir = "/output"
		if joined := filepath.Join(dir, name); filepath.Dir(joined) != dir || filepath.Base(joined) != name {
			fail("it resolves to " + joined + ", not a file directly in " + dir)
		}
		if again, err := artifactName(url.PathEscape(name)); err != nil || again != name {
			t.Fatalf("artifactName(%q) accepted %q, but its escaped form %q gives %q, %v", raw, name, url.PathEscape(name), again, err)
		}

		cd := contentDisposition(name)
		for i := 0; i < len(cd); i++ {
			if c := cd[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("Content-Disposition for %q has byte %#x: %q", name, c, cd)
			}
		}
		disp, params, err := mime.ParseMediaType(cd)
		if err != nil || disp != "attachment" || params["filename"] != name {
			t.Fatalf("Content-Disposition for %q is %q, which parses as %q, %q, %v", name, cd, disp, params, err)
		}
		if _, _, err := mime.ParseMediaType(artifactContentType(name)); err != nil {
			t.Fatalf("Content-Type for %q is %q: %v", name, artifactContentType(name), err)
		}
	})
}
