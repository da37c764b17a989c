package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tako-run/tako/client"
)

// defaultServerURL is the server the commands that talk to a running tako
// ask when neither --url nor TAKO_URL names one.
const defaultServerURL = "http://127.0.0.1:8000"

// serverFlags are the flags of the commands that talk to a running tako
// server (tako status, run, logs): where it is and the API key to send.
type serverFlags struct {
	URL    string // the server's base URL, without a trailing slash after check
	APIKey string // sent when not empty

	environ []string // for the defaults
}

// addServerFlags declares --url and --api-key on fs. Those not given
// default, in check, to $TAKO_URL (else defaultServerURL) and
// $TAKO_API_KEY from environ; the help does not print the key.
func addServerFlags(fs *flag.FlagSet, environ []string) *serverFlags {
	sf := &serverFlags{environ: environ}
	fs.StringVar(&sf.URL, "url", "", "tako server `URL` (default: $TAKO_URL, else "+defaultServerURL+")")
	fs.StringVar(&sf.APIKey, "api-key", "", "API `KEY` for a server that has keys (default: $TAKO_API_KEY)")
	return sf
}

// check fills in the defaults of the flags not given, validates --url and
// trims its trailing slash. The error names the flag and wraps errUsage.
func (sf *serverFlags) check() error {
	if sf.URL == "" {
		if sf.URL = lookup(sf.environ, "TAKO_URL"); sf.URL == "" {
			sf.URL = defaultServerURL
		}
	}
	if sf.APIKey == "" {
		sf.APIKey = lookup(sf.environ, "TAKO_API_KEY")
	}
	u, err := url.Parse(sf.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%w: --url must be an http:// or https:// URL, not %q", errUsage, sf.URL)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%w: --url must be the server's base URL, without a query or fragment, not %q", errUsage, sf.URL)
	}
	sf.URL = strings.TrimRight(sf.URL, "/")
	return nil
}

// newClient returns a client of the server sf names, sending the API key
// (if any) in header (client.DefaultAPIKeyHeader when empty), with opts
// after. Proxies come from the process environment, which commands do not
// read behind run's back, so none is used; tako is usually on loopback.
// timeout bounds each request when positive (no command that streams
// should set it).
func (sf *serverFlags) newClient(header string, timeout time.Duration, opts ...client.Option) (*client.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	all := []client.Option{client.WithHTTPClient(&http.Client{Transport: tr, Timeout: timeout})}
	if sf.APIKey != "" {
		all = append(all, client.WithAPIKey(sf.APIKey))
	}
	if header != "" {
		all = append(all, client.WithAPIKeyHeader(header))
	}
	c, err := client.New(sf.URL, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", sf.URL, err)
	}
	return c, nil
}
