package jobs

// Caller is who asks the dispatcher for something: the API key a request
// was authenticated with and whether that key is an admin. It is the one
// value the store turns into the condition that scopes a query (see
// jobs/postgres), so an execution is only ever read or changed on behalf of
// someone.
//
// An admin sees and acts on every execution. Any other caller sees only
// the executions its key submitted. The zero Caller (no key, not an admin)
// sees nothing: a server without API keys calls everyone an admin, on
// purpose, rather than by leaving a field empty.
type Caller struct {
	// APIKey is the name of the caller's API key; "" on a server without
	// keys.
	APIKey string
	// Admin sees and acts on every execution, whoever submitted it.
	Admin bool
}

// System is tako itself: the queue worker and maintenance, which act on
// every execution whoever submitted it.
var System = Caller{Admin: true}

// Quota bounds the work of one API key across every node. Zero in a field
// means no limit.
type Quota struct {
	// MaxPending is the most queued async executions of the key.
	MaxPending int
	// MaxConcurrent is the most running executions of the key, sync and
	// async.
	MaxConcurrent int
}
