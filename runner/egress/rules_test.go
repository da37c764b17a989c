package egress_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tako-run/tako/runner/egress"
)

func TestParseRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entry string
		want  egress.Host
		err   string // a part of the error; "" when it parses
	}{
		{entry: "api.example.com", want: egress.Host{Name: "api.example.com"}},
		{entry: "  API.Example.COM. ", want: egress.Host{Name: "api.example.com"}},
		{entry: "*.example.com", want: egress.Host{Name: "*.example.com"}},
		{entry: "*.Example.com.", want: egress.Host{Name: "*.example.com"}},
		{entry: "*", want: egress.Host{Name: "*"}},
		{entry: "*:8443", want: egress.Host{Name: "*", Ports: []int{8443}}},
		{entry: "api.test:8443", want: egress.Host{Name: "api.test", Ports: []int{8443}}},
		{entry: "*.example.com:443", want: egress.Host{Name: "*.example.com", Ports: []int{443}}},
		{entry: "10.1.2.3", want: egress.Host{Name: "10.1.2.3"}},
		{entry: "10.1.2.3:80", want: egress.Host{Name: "10.1.2.3", Ports: []int{80}}},
		{entry: "[2001:db8::1]:443", want: egress.Host{Name: "2001:db8::1", Ports: []int{443}}},
		{entry: "[2001:DB8::1]", want: egress.Host{Name: "2001:db8::1"}},
		{entry: "2001:db8::1", want: egress.Host{Name: "2001:db8::1"}},
		{entry: "2001:db8::1:443", want: egress.Host{Name: "2001:db8::1:443"}}, // an address: a port needs brackets
		{entry: "_srv.example.com", want: egress.Host{Name: "_srv.example.com"}},
		{entry: "x:1", want: egress.Host{Name: "x", Ports: []int{1}}},
		{entry: "x:65535", want: egress.Host{Name: "x", Ports: []int{65535}}},

		{entry: "", err: "empty"},
		{entry: "   ", err: "empty"},
		{entry: "https://api.example.com", err: "is a URL"},
		{entry: "api.example.com/simple", err: "more than a host and port"},
		{entry: "user@api.example.com", err: "more than a host and port"},
		{entry: "api.example.com:", err: "no port after the colon"},
		{entry: ":443", err: "no host before the port"},
		{entry: "api.example.com:https", err: `port "https" is not a number`},
		{entry: "api.example.com:+443", err: `port "+443" is not a number`},
		{entry: "api.example.com:0", err: "port 0 is out of range 1-65535"},
		{entry: "api.example.com:65536", err: "port 65536 is out of range 1-65535"},
		{entry: "a.*.com", err: "must be the whole first label"},
		{entry: "*example.com", err: "must be the whole first label"},
		{entry: "**.example.com", err: "must be the whole first label"},
		{entry: "*.", err: "must be the whole first label"},
		{entry: "api example.com", err: "which a host name cannot have"},
		{entry: "bücher.de", err: "which a host name cannot have"},
		{entry: "a..b", err: "empty label"},
		{entry: ".example.com", err: "empty label"},
		{entry: strings.Repeat("a", 64) + ".com", err: "longer than 63"},
		{entry: strings.Repeat("a.", 127) + "com", err: "longer than 253"},
		{entry: "2001:db8:::443", err: "in brackets"},
		{entry: "a:b:c", err: "in brackets"},
		{entry: "[example.com]:443", err: "not an IPv6 address"},
		{entry: "[10.0.0.1]:443", err: "not an IPv6 address"},
		{entry: "[2001:db8::1", err: "no closing bracket"},
		{entry: "[2001:db8::1]443", err: "is not a port"},
		{entry: "[2001:db8::1]:", err: "is not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			t.Parallel()
			got, err := egress.ParseRule(tt.entry)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRule(%q) = %+v, %v; want an error with %q", tt.entry, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.entry, err)
			}
			if got.Name != tt.want.Name || !slices.Equal(got.Ports, tt.want.Ports) {
				t.Fatalf("ParseRule(%q) = %+v, want %+v", tt.entry, got, tt.want)
			}
		})
	}
}

// TestParseRuleRoundTrip: what ParseRule returns renders back to an entry
// that parses to the same Host.
func TestParseRuleRoundTrip(t *testing.T) {
	t.Parallel()
	for _, entry := range []string{"a.test", "a.test:8080", "*.a.test:443", "*", "*:22", "[2001:db8::1]:443", "2001:db8::1", "10.0.0.1:80"} {
		h, err := egress.ParseRule(entry)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", entry, err)
		}
		again, err := egress.ParseRule(h.String())
		if err != nil || again.Name != h.Name || !slices.Equal(again.Ports, h.Ports) {
			t.Errorf("%q renders as %q, which parses to %+v, %v", entry, h.String(), again, err)
		}
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"*", "a.example.com", true},
		{"*", "*.example.com", true},
		{"*", "*", true},
		{"*", "10.0.0.1", true},
		{"*:443", "a.example.com", false}, // inner's default ports include 80
		{"*:443", "a.example.com:443", true},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "b.a.example.com", true},
		{"*.example.com", "A.Example.COM.", true},
		{"*.example.com", "*.b.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "*.com", false},
		{"*.example.com", "*", false},
		{"*.example.com", "aexample.com", false},
		{"*.example.com", "a.example.org", false},
		{"*.example.com", "*.other.com", false},
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "A.EXAMPLE.COM.", true},
		{"a.example.com", "b.example.com", false},
		{"a.example.com", "*.a.example.com", false},
		{"a.example.com", "*", false},
		{"10.0.0.1", "10.0.0.1", true},
		{"10.0.0.1", "10.0.0.2", false},
		{"a.test", "a.test:80", true},
		{"a.test", "a.test:443", true},
		{"a.test", "a.test:8080", false},
		{"a.test:8080", "a.test", false},
		{"a.test:8080", "a.test:8080", true},
		{"*.test:8080", "a.test:8080", true},
		{"*.test:8080", "a.test:8081", false},
	}
	for _, tt := range tests {
		outer, err := egress.ParseRule(tt.outer)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := egress.ParseRule(tt.inner)
		if err != nil {
			t.Fatal(err)
		}
		if got := egress.Covers(outer, inner); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.outer, tt.inner, got, tt.want)
		}
	}
}

// TestCoversPorts: ports compare as sets, with nil and empty meaning 80
// and 443, on hosts built directly as well as parsed.
func TestCoversPorts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		outer, inner []int
		want         bool
	}{
		{nil, nil, true},
		{[]int{}, nil, true},
		{nil, []int{443, 80}, true},
		{[]int{443, 80, 8080}, nil, true},
		{[]int{443}, nil, false},
		{nil, []int{80, 443, 8080}, false},
		{[]int{8080, 8443}, []int{8443}, true},
		{[]int{8080}, []int{8080, 8443}, false},
	}
	for _, tt := range tests {
		got := egress.Covers(egress.Host{Name: "a.test", Ports: tt.outer}, egress.Host{Name: "a.test", Ports: tt.inner})
		if got != tt.want {
			t.Errorf("Covers(ports %v, ports %v) = %v, want %v", tt.outer, tt.inner, got, tt.want)
		}
	}
}

func TestHostString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host egress.Host
		want string
	}{
		{egress.Host{Name: "*.example.com"}, "*.example.com"},
		{egress.Host{Name: "api.test", Ports: []int{8443}}, "api.test:8443"},
		{egress.Host{Name: "api.test", Ports: []int{80, 8080}}, "api.test:80,8080"},
		{egress.Host{Name: "2001:db8::1", Ports: []int{443}}, "[2001:db8::1]:443"},
		{egress.Host{Name: "2001:db8::1"}, "2001:db8::1"},
	}
	for _, tt := range tests {
		if got := tt.host.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.host, got, tt.want)
		}
	}
}
