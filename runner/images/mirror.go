package images

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// errNoMirror is returned when neither the options nor the host's apt
// sources name a Debian mirror.
var errNoMirror = errors.New("no Debian mirror found in /etc/apt/sources*; set images.debian_mirror")

// aptSource is one "deb" entry of an apt sources file, in either format.
type aptSource struct {
	uris       []string
	suites     []string
	components []string
	signedBy   string
}

// findMirror returns the first http(s) URI in the apt sources under aptDir
// (normally /etc/apt) that serves the main Debian archive. An entry listing
// suite itself wins; failing that, any Debian entry for a main-archive suite
// (one without a "-updates", "-security" ... suffix) is taken, since a
// mirror serves every release. Security, updates-only and third-party
// sources are skipped. Files are read in apt's order: sources.list, then
// sources.list.d/* sorted by name.
func findMirror(aptDir, suite string) (string, error) {
	sources, err := readAptSources(aptDir)
	if err != nil {
		return "", err
	}
	var fallback string
	for _, s := range sources {
		if !hasString(s.components, "main") || !looksDebian(s) {
			continue
		}
		for _, u := range s.uris {
			if !isHTTP(u) {
				continue
			}
			if hasString(s.suites, suite) {
				return strings.TrimRight(u, "/"), nil
			}
			if fallback == "" && hasMainSuite(s.suites) {
				fallback = strings.TrimRight(u, "/")
			}
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "", errNoMirror
}

// readAptSources parses sources.list and sources.list.d/*.{list,sources}
// under aptDir. Missing files are not an error; unreadable ones are.
func readAptSources(aptDir string) ([]aptSource, error) {
	files := []string{filepath.Join(aptDir, "sources.list")}
	entries, err := os.ReadDir(filepath.Join(aptDir, "sources.list.d"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read apt sources: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".list") || strings.HasSuffix(e.Name(), ".sources")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, filepath.Join(aptDir, "sources.list.d", n))
	}

	var out []aptSource
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read apt sources: %w", err)
		}
		if strings.HasSuffix(f, ".sources") {
			out = append(out, parseDeb822(string(data))...)
		} else {
			out = append(out, parseOneLine(string(data))...)
		}
	}
	return out, nil
}

// parseOneLine parses the classic format:
// "deb [opt=value ...] uri suite component...".
func parseOneLine(data string) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		var s aptSource
		if i := strings.IndexByte(line, '['); i >= 0 {
			j := strings.IndexByte(line[i:], ']')
			if j < 0 {
				continue
			}
			for _, opt := range strings.Fields(line[i+1 : i+j]) {
				if k, v, ok := strings.Cut(opt, "="); ok && strings.EqualFold(k, "signed-by") {
					s.signedBy = v
				}
			}
			line = line[:i] + " " + line[i+j+1:]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		s.uris, s.suites, s.components = f[1:2], f[2:3], f[3:]
		out = append(out, s)
	}
	return out
}

// parseDeb822 parses the deb822 format: stanzas of "Key: value" fields
// separated by blank lines, with continuation lines starting with a space.
func parseDeb822(data string) []aptSource {
	var out []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) == 0 {
			return
		}
		enabled := strings.ToLower(strings.TrimSpace(fields["enabled"]))
		if hasString(strings.Fields(fields["types"]), "deb") && enabled != "no" && enabled != "false" {
			out = append(out, aptSource{
				uris:       strings.Fields(fields["uris"]),
				suites:     strings.Fields(fields["suites"]),
				components: strings.Fields(fields["components"]),
				signedBy:   fields["signed-by"],
			})
		}
		fields, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

// looksDebian reports whether a source is Debian's own archive rather than a
// third-party repository that happens to use the same suite name: its path
// ends in "/debian" (as every Debian mirror's does) or it is signed with the
// Debian archive keyring.
func looksDebian(s aptSource) bool {
	if strings.Contains(s.signedBy, "debian-archive-keyring") {
		return true
	}
	for _, u := range s.uris {
		if p, err := url.Parse(u); err == nil && path.Base(strings.TrimRight(p.Path, "/")) == "debian" {
			return true
		}
	}
	return false
}

// hasMainSuite reports whether suites has a main-archive suite, such as
// "bookworm" or "stable", as opposed to "bookworm-updates" or
// "bookworm-security".
func hasMainSuite(suites []string) bool {
	for _, s := range suites {
		if s != "" && !strings.Contains(s, "-") && !strings.Contains(s, "/") {
			return true
		}
	}
	return false
}

func isHTTP(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
