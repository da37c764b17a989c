package jobtypes

import (
	"strings"
	"testing"
)

func TestValidateRequirement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		req     string
		wantErr string // "" means valid
	}{
		{req: "numpy"},
		{req: "scikit-learn"},
		{req: "zope.interface"},
		{req: "Django_Rest"},
		{req: "a"},
		{req: "numpy==1.26.4"},
		{req: "numpy >= 1.20, < 2"},
		{req: "pandas>=1,<2"},
		{req: "requests~=2.31"},
		{req: "torch!=2.0.0"},
		{req: "pkg===1.0+local"},
		{req: "pkg==1.*"},
		{req: "pkg (>=1.0)"},
		{req: "requests[security,socks]"},
		{req: "requests[security]>=2"},
		{req: "requests [ socks ] == 2.31.0"},
		{req: "pkg[]"},
		{req: `tomli; python_version < "3.11"`},
		{req: "pywin32 ; sys_platform == 'win32' and platform_machine != 'arm64'"},
		{req: `pkg; (os_name == "posix" or os_name == "nt") and extra == 'x'`},
		{req: `pkg; "linux" in sys_platform`},
		{req: `pkg; 'x' not in sys_platform`},
		{req: "  numpy  "},

		{req: "", wantErr: "empty"},
		{req: "   ", wantErr: "empty"},
		{req: "-r requirements.txt", wantErr: "pip option"},
		{req: "-e .", wantErr: "pip option"},
		{req: "--index-url=https://evil.example/simple", wantErr: "pip option"},
		{req: "--extra-index-url https://x", wantErr: "pip option"},
		{req: "https://example.com/pkg.whl", wantErr: "URL"},
		{req: "git+https://github.com/a/b", wantErr: "URL"},
		{req: "pkg @ https://example.com/pkg.whl", wantErr: "direct reference"},
		{req: "pkg@file:///tmp/x", wantErr: "direct reference"},
		{req: "pkg @ git+ssh://git@host/x", wantErr: "direct reference"},
		{req: "pkg==v1.0"},
		{req: "pkg===foo"},
		{req: "./local/pkg", wantErr: "path"},
		{req: "/abs/pkg", wantErr: "path"},
		{req: "..", wantErr: "path"},
		{req: "~/pkg", wantErr: "path"},
		{req: `C:\pkg`, wantErr: "path"},
		{req: "numpy-1.0-py3-none-any.whl", wantErr: "archive"},
		{req: "pkg.tar.gz", wantErr: "archive"},
		{req: "numpy; rm -rf /", wantErr: "marker"},
		{req: "numpy && curl evil", wantErr: "not a package name"},
		{req: "numpy | sh", wantErr: "not a package name"},
		{req: "numpy`id`", wantErr: "not a package name"},
		{req: "numpy$(id)", wantErr: "not a package name"},
		{req: "numpy > /etc/passwd", wantErr: "path"},
		{req: "numpy <in", wantErr: "not a package name"},
		{req: "numpy\nrequests", wantErr: "single line"},
		{req: "numpy==1.0\r", wantErr: "single line"},
		{req: "numpy 1.0", wantErr: "not a package name"},
		{req: "numpy==", wantErr: "not a package name"},
		{req: "-numpy", wantErr: "pip option"},
		{req: "numpy-", wantErr: "not a package name"},
		{req: "num py", wantErr: "not a package name"},
		{req: "pkg[a b]", wantErr: "not a package name"},
		{req: "numpy;", wantErr: "marker is empty"},
		{req: "numpy; python_version", wantErr: "expected a comparison"},
		{req: "numpy; python_version < '3' and", wantErr: "unexpected end"},
		{req: "numpy; (python_version < '3'", wantErr: "missing )"},
		{req: "numpy; evil_var == '1'", wantErr: "unknown marker variable"},
		{req: "numpy; os_name == '$(id)'", wantErr: "not allowed"},
		{req: "numpy; os_name == '`id`'", wantErr: "not allowed"},
		{req: "numpy; os_name == 'a' ; os_name == 'b'", wantErr: "not allowed"},
		{req: "numpy; os_name == 'a' | sh", wantErr: "not allowed"},
		{req: `numpy; os_name == "a\"b"`, wantErr: "not allowed"},
		{req: "numpy; os_name == 'unterminated", wantErr: "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.req, func(t *testing.T) {
			t.Parallel()
			err := ValidateRequirement(tt.req)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ValidateRequirement(%q) = %v, want nil", tt.req, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("ValidateRequirement(%q) = nil, want error containing %q", tt.req, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("ValidateRequirement(%q) = %q, want it to contain %q", tt.req, err, tt.wantErr)
			}
		})
	}
}
