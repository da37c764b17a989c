package jobtypes

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzValidateRequirement checks what ValidateRequirement promises for any
// string: it never panics, it answers the same twice, only the trimmed text
// counts, and an accepted requirement is none of what it rejects. An
// accepted entry is at most 512 bytes of one line without control
// characters (the image builder refuses those), not a pip option and
// carries no whitespace-separated one, has no URL, no direct reference and
// no path in its name part, no shell metacharacter that could run a command
// (` $ | & \ and ';' beyond the one that starts the marker), and its name
// is not an archive file. The seeds are in
// testdata/fuzz/FuzzValidateRequirement.
func FuzzValidateRequirement(f *testing.F) {
	f.Fuzz(func(t *testing.T, req string) {
		err := ValidateRequirement(req)
		if again := ValidateRequirement(req); errText(again) != errText(err) {
			t.Fatalf("ValidateRequirement(%q) is not deterministic: %v, then %v", req, err, again)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ValidateRequirement(%q) returned an empty error", req)
			}
			return
		}
		if padded := " \t" + req + " "; len(padded) <= maxRequirementLen && ValidateRequirement(padded) != nil {
			t.Fatalf("ValidateRequirement(%q) = nil but %q, which only adds blanks, is rejected", req, padded)
		}

		r := strings.TrimSpace(req)
		spec, _, _ := strings.Cut(r, ";")
		fail := func(why string) {
			t.Helper()
			t.Fatalf("ValidateRequirement(%q) = nil, but %s", req, why)
		}
		switch {
		case len(req) > maxRequirementLen:
			fail("it is longer than 512 bytes")
		case strings.ContainsAny(req, "\n\r\x00"):
			fail("it is not a single line")
		case strings.IndexFunc(r, unicode.IsControl) >= 0:
			fail("it contains a control character")
		case r == "":
			fail("it is blank")
		case strings.HasPrefix(r, "-"):
			fail("it is a pip option")
		case strings.Contains(r, "://"):
			fail("it contains a URL")
		case strings.Contains(spec, "@"):
			fail("it is a direct reference")
		case strings.ContainsAny(spec, `/\`) || strings.HasPrefix(spec, ".") || strings.HasPrefix(spec, "~"):
			fail("it is a path")
		case strings.ContainsAny(r, "`$|&\\"):
			fail("it contains a shell metacharacter")
		case strings.Count(r, ";") > 1:
			fail("it contains a ';' besides the one that starts the marker")
		case strings.IndexFunc(spec, notSpecChar) >= 0:
			fail("its name and version part has a character outside name[extras] (specifiers)")
		case isArchive(projectName(spec)):
			fail("its name is an archive file")
		}
		for _, field := range strings.Fields(r) {
			if strings.HasPrefix(field, "-") {
				fail("it carries a pip option, " + field)
			}
		}
	})
}

// errText is err's message, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// notSpecChar reports whether r cannot appear in the part of a requirement
// before its marker: a name, [extras] and version specifiers.
func notSpecChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-[],()~=!<>*+ \t", r))
}

// projectName is the leading project name of spec.
func projectName(spec string) string {
	end := strings.IndexFunc(spec, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	})
	if end < 0 {
		return spec
	}
	return spec[:end]
}

// isArchive reports whether name is a file pip would install from disk.
func isArchive(name string) bool {
	name = strings.ToLower(name)
	for _, ext := range []string{".whl", ".zip", ".tar", ".tgz", ".tbz", ".txz", ".tlz", ".tar.gz", ".tar.bz2", ".tar.xz", ".tar.lz", ".tar.lzma"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}
