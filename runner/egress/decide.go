package egress

import (
	acl "github.com/stripe/smokescreen/pkg/smokescreen/acl/v1"
)

// decider is smokescreen's egress ACL, the one place that decides which
// destinations a client may ask for: those its rules allow, on the server
// its credentials belong to, without an upstream proxy. Whether the
// address a name resolves to may be reached is smokescreen's to decide,
// after. For a lease, the decider records the attempt and hands its id
// to the hooks that see the outcome in the decision's Project.
type decider struct {
	p       *proxy
	trusted bool
}

// Decide implements acl.Decider.
func (d decider) Decide(args acl.DecideArgs) (acl.Decision, error) {
	c := d.p.client(args.Service)
	host, port := normalizeHost(args.Host), destinationPort(args.Req)
	allowed, reason, rule := d.judge(c, host, port, args.ConnectProxyHost)
	decision := acl.Decision{Result: acl.Deny, Reason: reason}
	if allowed {
		decision.Result = acl.Allow
	}
	if c != nil && c.lease != nil {
		decision.Project = c.lease.begin(host, port, allowed, reason, rule)
	}
	return decision, nil
}

// judge decides whether client c may reach host on port, why, and by
// which of its rules.
func (d decider) judge(c *client, host string, port int, upstreamProxy string) (allowed bool, reason, rule string) {
	switch {
	case c == nil:
		return false, "the credentials were withdrawn", ""
	case c.private != d.trusted:
		return false, "wrong proxy port for these credentials", ""
	case upstreamProxy != "":
		return false, "an upstream proxy (X-Upstream-Https-Proxy) is not allowed", ""
	}
	for _, r := range c.rules {
		if r.matches(host, port) {
			return true, "allowed by " + r.text, r.text
		}
	}
	list := "the allowlist"
	if c.lease != nil {
		list = "this job's allowlist"
	}
	return false, hostPort(host, port) + " is not in " + list, ""
}
