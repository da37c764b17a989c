package dispatch

import (
	"errors"
	"testing"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
)

// TestCheckNetwork: a request may narrow its job type's allowlist, never
// widen it, and the error names the entry that would.
func TestCheckNetwork(t *testing.T) {
	t.Parallel()
	web := jobtypes.JobType{Name: "web", Network: jobtypes.NetworkAllow, Allow: []string{"api.example.com", "*.s3.example.com", "mirror.test:8443"}}
	for _, tt := range []struct {
		name  string
		jt    jobtypes.JobType
		allow []string
		field string // "" when allowed
	}{
		{"no narrowing", web, nil, ""},
		{"a subset", web, []string{"api.example.com:443", "bucket.s3.example.com"}, ""},
		{"a narrower wildcard", web, []string{"*.eu.s3.example.com"}, ""},
		{"nothing at all", web, []string{}, ""},
		{"another host", web, []string{"api.example.com", "evil.example.com"}, "network.allow[1]"},
		{"another port", web, []string{"mirror.test:443"}, "network.allow[0]"},
		{"the wildcard's own domain", web, []string{"s3.example.com"}, "network.allow[0]"},
		{"everything", web, []string{"*"}, "network.allow[0]"},
		{"not an entry", web, []string{"https://api.example.com"}, "network.allow[0]"},
		{"a job type without an allowlist", jobtypes.JobType{Name: "default", Network: jobtypes.NetworkNone}, []string{"api.example.com"}, "network.allow"},
	} {
		err := checkNetwork(jobs.Submission{NetworkAllow: tt.allow}, tt.jt)
		var e *jobs.Error
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%s: %v, want it allowed", tt.name, err)
		case tt.field != "" && (!errors.As(err, &e) || e.Code != jobs.EINVALID || e.Field != tt.field):
			t.Errorf("%s: %v, want EINVALID naming %s", tt.name, err, tt.field)
		}
	}
}
