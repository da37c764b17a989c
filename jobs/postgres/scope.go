package postgres

import (
	"fmt"
	"strings"

	"github.com/tako-run/tako/jobs"
)

// where is the WHERE clause of a statement on tako_executions, aliased e,
// built with its arguments. A statement with parameters of its own starts
// with them in args, so that the clause's are numbered after them.
type where struct {
	args  []any
	conds []string
}

// cond adds a condition that takes no argument, or refers to one of the
// statement's own.
func (w *where) cond(c string) { w.conds = append(w.conds, c) }

// add adds a condition with one argument; format has one %d, the
// argument's parameter number.
func (w *where) add(format string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, fmt.Sprintf(format, len(w.args)))
}

// scope is the one place a statement is limited to the executions caller
// may see and act on: every read and change of an execution by id, and the
// history, goes through it. An admin (and every caller of a server without
// keys, which the API treats as an admin) gets no condition. Any other
// caller gets only the executions its API key submitted; one without a key
// name gets none. Whatever else the statement asks for is ANDed with it,
// so no filter can widen it.
func (w *where) scope(c jobs.Caller) {
	switch {
	case c.Admin:
	case c.APIKey == "":
		w.cond("false")
	default:
		w.add("e.api_key = $%d", c.APIKey)
	}
}

// byID returns the clause that selects execution id, as $1, for caller c.
func byID(c jobs.Caller, id string) *where {
	w := &where{}
	w.add("e.id = $%d", id)
	w.scope(c)
	return w
}

// String renders the clause, " WHERE ..." or "" when it has no condition.
func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
