package images

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindMirror(t *testing.T) {
	t.Parallel()
	const debianDeb822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`
	tests := []struct {
		name  string
		files map[string]string // path under the apt dir -> content
		suite string
		want  string // "" = errNoMirror
	}{
		{
			name:  "deb822 with security entry",
			files: map[string]string{"sources.list.d/debian.sources": debianDeb822},
			suite: "bookworm",
			want:  "http://deb.debian.org/debian",
		},
		{
			name: "security first, then main",
			files: map[string]string{"sources.list.d/debian.sources": `Types: deb
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src deb
URIs: http://ftp.de.debian.org/debian/
Suites: bookworm
Components: main contrib
`},
			suite: "bookworm",
			want:  "http://ftp.de.debian.org/debian",
		},
		{
			name: "one-line format with options and comments",
			files: map[string]string{"sources.list": `# main archive
deb-src http://deb.debian.org/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.net/debian bookworm main non-free # local mirror
`},
			suite: "bookworm",
			want:  "http://mirror.example.net/debian",
		},
		{
			name: "third-party sources are skipped",
			files: map[string]string{
				"sources.list.d/google-cloud-sdk.list": "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main\n",
				"sources.list.d/nodesource.sources":    "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
				"sources.list.d/php.list":              "deb https://packages.sury.org/php/ bookworm main\n",
				"sources.list.d/zz-debian.list":        "deb https://mirror.example.org/debian/ bookworm main\n",
			},
			suite: "bookworm",
			want:  "https://mirror.example.org/debian",
		},
		{
			name:  "updates-only source is not enough",
			files: map[string]string{"sources.list": "deb http://deb.debian.org/debian bookworm-updates main\n"},
			suite: "bookworm",
		},
		{
			name:  "disabled deb822 entry is skipped",
			files: map[string]string{"sources.list.d/debian.sources": "Enabled: no\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"},
			suite: "bookworm",
		},
		{
			name:  "mirror of another release serves the suite too",
			files: map[string]string{"sources.list": "deb http://deb.debian.org/debian trixie main\n"},
			suite: "bookworm",
			want:  "http://deb.debian.org/debian",
		},
		{
			name:  "exact suite wins over an earlier other release",
			files: map[string]string{"sources.list": "deb http://a.example/debian trixie main\ndeb http://b.example/debian bookworm main\n"},
			suite: "bookworm",
			want:  "http://b.example/debian",
		},
		{
			name:  "non-http sources are skipped",
			files: map[string]string{"sources.list": "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\ndeb file:/srv/debian bookworm main\n"},
			suite: "bookworm",
		},
		{
			name:  "no sources at all",
			files: map[string]string{},
			suite: "bookworm",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := findMirror(dir, tt.suite)
			if tt.want == "" {
				if !errors.Is(err, errNoMirror) {
					t.Fatalf("findMirror = %q, %v; want errNoMirror", got, err)
				}
				if err.Error() != "no Debian mirror found in /etc/apt/sources*; set images.debian_mirror" {
					t.Errorf("error text = %q", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findMirror = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestBuilderMirrorPrefersOption(t *testing.T) {
	t.Parallel()
	b := NewBuilder(nil, Options{DebianMirror: "http://apt.internal.example/debian/", aptDir: t.TempDir()}, nil, nil)
	got, err := b.mirror()
	if err != nil || got != "http://apt.internal.example/debian" {
		t.Fatalf("mirror = %q, %v", got, err)
	}
}
