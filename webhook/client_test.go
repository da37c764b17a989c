package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	devHTTP := Policy{AllowHTTP: true} // http allowed, so the scheme is not why a URL is refused
	tests := []struct {
		name    string
		url     string
		p       Policy
		wantErr string // "" when accepted
		refused bool   // the error is a *RefusedError
	}{
		{"loopback", "http://127.0.0.1:8080/hook", devHTTP, "refused: 127.0.0.1 is a loopback address", true},
		{"private", "http://10.0.0.1/", devHTTP, "refused: 10.0.0.1 is a private address", true},
		{"private 172.16/12", "http://172.20.1.1/", devHTTP, "private address", true},
		{"private 192.168/16", "http://192.168.1.1/", devHTTP, "private address", true},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", devHTTP, "refused: 169.254.169.254 is a cloud metadata address", true},
		{"link-local", "http://169.254.1.1/", devHTTP, "link-local address", true},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:8080/", devHTTP, "refused: ::ffff:127.0.0.1 is a loopback address", true},
		{"CGNAT", "http://100.64.0.1/", devHTTP, "refused: 100.64.0.1 is a carrier-grade NAT", true},
		{"IPv6 loopback", "http://[::1]/", devHTTP, "loopback address", true},
		{"IPv6 unique local", "http://[fd12::1]/", devHTTP, "private address", true},
		{"IPv6 link-local", "http://[fe80::1]/", devHTTP, "link-local address", true},
		{"unspecified", "http://0.0.0.0/", devHTTP, "unspecified address", true},
		{"broadcast", "http://255.255.255.255/", devHTTP, "broadcast address", true},
		{"multicast", "http://224.0.0.1/", devHTTP, "multicast address", true},
		{"documentation range", "http://192.0.2.1/", devHTTP, "reserved (special-purpose) address", true},
		{"localhost resolves to loopback", "http://localhost:8080/", devHTTP, "refused: localhost resolves to", true},
		{"public IPv4", "https://93.184.215.14/hook", Policy{}, "", false},
		{"public IPv6", "https://[2606:4700:4700::1111]/hook", Policy{}, "", false},
		{"IPv4-mapped public", "http://[::ffff:8.8.8.8]/", devHTTP, "", false},
		{"http without AllowHTTP", "http://93.184.215.14/", Policy{}, "must use https://", false},
		{"other scheme", "ftp://93.184.215.14/", devHTTP, "must be an http:// or https:// URL, not ftp://", false},
		{"relative", "/hook", devHTTP, "must be an absolute http:// or https:// URL", false},
		{"no host", "https:///hook", devHTTP, "must be an absolute", false},
		{"not a URL", "https://exa mple.com/", devHTTP, "must be an absolute", false},
		{"user info", "https://user:pw@93.184.215.14/", devHTTP, "must not contain a user name or password", false},
		{"loopback allowed", "http://127.0.0.1:8080/", Policy{AllowHTTP: true, AllowPrivateNetworks: true}, "", false},
		{"unresolvable host passes", "https://no-such-host.invalid/", Policy{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := CheckURL(ctx, tt.url, tt.p)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckURL(%q): %v, want nil", tt.url, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckURL(%q) = %v, want an error containing %q", tt.url, err, tt.wantErr)
			}
			var refused *RefusedError
			if got := errors.As(err, &refused); got != tt.refused {
				t.Errorf("CheckURL(%q) = %v: a *RefusedError is %v, want %v", tt.url, err, got, tt.refused)
			}
			if strings.Contains(tt.url, "pw@") && err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q echoes the password", err)
			}
		})
	}
}
