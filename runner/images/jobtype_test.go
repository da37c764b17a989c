package images

import (
	"strings"
	"testing"

	"github.com/tako-run/tako/jobtypes"
)

func TestJobTypeScript(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		jt   jobtypes.JobType
		pip  jobtypes.PipIndex
		want string
	}{
		{
			name: "system packages only",
			jt:   jobtypes.JobType{Name: "data", SystemPackages: []string{"python3-numpy", "ffmpeg"}},
			want: "set -e\napt-get update\nDEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-numpy ffmpeg\nrm -rf /var/lib/apt/lists/*\n",
		},
		{
			name: "requirements with a private index",
			jt:   jobtypes.JobType{Name: "web", Requirements: []string{"takotiny"}},
			pip:  jobtypes.PipIndex{IndexURL: "http://10.0.0.5:8080/simple", ExtraIndexURLs: []string{"https://mirror/simple"}, TrustedHosts: []string{"10.0.0.5"}},
			want: "set -e\nPIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-cache-dir --break-system-packages " +
				"--index-url http://10.0.0.5:8080/simple --extra-index-url https://mirror/simple --trusted-host 10.0.0.5 takotiny\n",
		},
		{
			name: "quotes are escaped",
			jt:   jobtypes.JobType{Name: "odd", Requirements: []string{`foo; python_version >= "3.8"`, "it's"}},
			want: "set -e\n" +
				`PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-cache-dir --break-system-packages 'foo; python_version >= "3.8"' 'it'\''s'` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := jobTypeScript(tt.jt, tt.pip); got != tt.want {
				t.Errorf("script:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestValidateJobType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		jt      jobtypes.JobType
		pip     jobtypes.PipIndex
		wantErr string // "" = valid
	}{
		{name: "valid", jt: jobtypes.JobType{Name: "data", SystemPackages: []string{"python3-numpy", "libfoo=1.2-3", "ffmpeg:amd64"}, Requirements: []string{"a>=1", "b[extra]"}, Preload: []string{"numpy", "os.path"}}},
		{name: "bad name", jt: jobtypes.JobType{Name: "Data!"}, wantErr: "invalid name"},
		{name: "apt option injection", jt: jobtypes.JobType{Name: "x", SystemPackages: []string{"-oAPT::Foo=1"}}, wantErr: "system_packages"},
		{name: "shell in package", jt: jobtypes.JobType{Name: "x", SystemPackages: []string{"a;reboot"}}, wantErr: "system_packages"},
		{name: "pip option", jt: jobtypes.JobType{Name: "x", Requirements: []string{"--index-url=http://evil"}}, wantErr: "options are not allowed"},
		{name: "newline in requirement", jt: jobtypes.JobType{Name: "x", Requirements: []string{"a\nRUN evil"}}, wantErr: "control characters"},
		{name: "code in preload", jt: jobtypes.JobType{Name: "x", Preload: []string{"os; os.system('x')"}}, wantErr: "preload"},
		{name: "newline in index", jt: jobtypes.JobType{Name: "x"}, pip: jobtypes.PipIndex{IndexURL: "http://a\nRUN evil"}, wantErr: "pip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := validateJobType(tt.jt, tt.pip)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validateJobType: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validateJobType = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestJobTypeRef(t *testing.T) {
	t.Parallel()
	jt := jobtypes.JobType{Name: "data", SystemPackages: []string{"b", "a"}}
	ref := jobTypeRef(jt, "sha256:1111", jobtypes.PipIndex{})
	if !strings.HasPrefix(ref, "tako-jt-data:") || len(ref) != len("tako-jt-data:")+16 {
		t.Fatalf("ref = %q", ref)
	}
	reordered := jobtypes.JobType{Name: "data", SystemPackages: []string{"a", "b"}}
	if got := jobTypeRef(reordered, "sha256:1111", jobtypes.PipIndex{}); got != ref {
		t.Errorf("package order changed the tag: %q vs %q", got, ref)
	}
	if got := jobTypeRef(jt, "sha256:2222", jobtypes.PipIndex{}); got == ref {
		t.Errorf("a new base image kept the tag %q", got)
	}
}
