package runner

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCollectArtifactName feeds arbitrary directory entry names to
// artifactName, the filter that decides which files in /output become
// artifacts. The properties: it never panics and answers the same twice;
// an accepted name is a single plain file name (not empty, at most 255
// bytes, UTF-8, printable, no '/', '\' or NUL, not "." or ".." or hidden)
// that stays directly inside the directory it is joined to; and it passes
// the API's own name check (api.artifactName: no control character), so
// every collected artifact can be downloaded. The seeds are in
// testdata/fuzz/FuzzCollectArtifactName.
func FuzzCollectArtifactName(f *testing.F) {
	f.Fuzz(func(t *testing.T, name string) {
		ok := artifactName(name)
		if artifactName(name) != ok {
			t.Fatalf("artifactName(%q) is not deterministic", name)
		}
		if !ok {
			return
		}
		fail := func(why string) {
			t.Helper()
			t.Fatalf("artifactName(%q) = true, but %s", name, why)
		}
		switch {
		case name == "" || len(name) > 255:
			fail("it is empty or longer than 255 bytes")
		case !utf8.ValidString(name):
			fail("it is not UTF-8")
		case strings.ContainsAny(name, "/\\\x00"):
			fail("it contains a path separator or NUL")
		case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
			fail("it contains a character that is not printable")
		case strings.IndexFunc(name, unicode.IsControl) >= 0:
			fail("it contains a control character, which the API refuses")
		case name == "." || name == ".." || strings.HasPrefix(name, "."):
			fail("it is a dot name or hidden")
		case !filepath.IsLocal(name):
			fail("it is not local to a directory")
		}
		const dir = "/tmp/tako-output"
		if joined := filepath.Join(dir, name); filepath.Dir(joined) != dir || filepath.Base(joined) != name {
			fail("it resolves to " + joined + ", not a file directly in " + dir)
		}
	})
}
