package dispatch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/tako-run/tako/jobs"
)

// TestAttemptOutcome: what an attempt's end makes of its execution and its
// River job, decided without Docker or a database.
func TestAttemptOutcome(t *testing.T) {
	t.Parallel()
	const limit = 72 * time.Second
	succeeded := &jobs.Result{Status: jobs.StatusSucceeded, Stdout: "ok\n"}
	programFailed := &jobs.Result{Status: jobs.StatusFailed, ExitCode: 1, Error: &jobs.ExecError{Type: jobs.ErrName, Message: "NameError: x"}}
	killed := &jobs.Result{Status: jobs.StatusCancelled, ExitCode: -1, Error: &jobs.ExecError{Type: jobs.ErrCancelled, Message: "killed by the runner"}}
	ownTimeout := &jobs.Result{Status: jobs.StatusTimeout, ExitCode: -1, Error: &jobs.ExecError{Type: jobs.ErrTimeout, Message: "the program ran out of its 30s"}}
	dockerDown := errors.New("create container: connection refused")
	noSlot := &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "no free slot"}
	unresolvable := fmt.Errorf("requirements: %w", &jobs.Error{Code: jobs.EINVALID, Message: "no matching distribution for nosuchpkg"})
	forbidden := &jobs.Error{Code: jobs.ENOTALLOWED, Message: "requirements are not allowed for this job type"}

	// want describes the stored result: nil for none, else its status,
	// error type and error message ("" when the result has no error).
	type want struct {
		verdict verdict
		status  jobs.Status
		errType string
		message string
	}
	for _, tc := range []struct {
		name     string
		end      attemptEnd
		res      *jobs.Result
		err      error
		attempt  int
		want     want
		wantSame *jobs.Result // the runner's result itself is stored
	}{
		{name: "a program that succeeds is finished", end: endRan, res: succeeded, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusSucceeded}, wantSame: succeeded},
		{name: "an execution taken from this node stores nothing, whatever it ran to", end: endTaken, res: succeeded, attempt: 1,
			want: want{verdict: verdictDrop}},
		{name: "an execution taken from this node is not retried here", end: endTaken, err: dockerDown, attempt: 1,
			want: want{verdict: verdictDrop}},
		{name: "a program that fails is finished, not retried", end: endRan, res: programFailed, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusFailed, errType: jobs.ErrName, message: "NameError: x"}, wantSame: programFailed},
		{name: "the program's own timeout is finished as it is", end: endRan, res: ownTimeout, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusTimeout, errType: jobs.ErrTimeout, message: "the program ran out of its 30s"}, wantSame: ownTimeout},
		{name: "an infrastructure failure with attempts left is retried", end: endRan, err: dockerDown, attempt: 1,
			want: want{verdict: verdictRetry}},
		{name: "an infrastructure failure before the last attempt is retried", end: endRan, err: noSlot, attempt: 2,
			want: want{verdict: verdictRetry}},
		{name: "an infrastructure failure on the last attempt gives up", end: endRan, err: dockerDown, attempt: 3,
			want: want{verdict: verdictGiveUp, status: jobs.StatusFailed, errType: jobs.ErrInternal, message: "tako could not run the program"}},
		{name: "an unavailable runner on the last attempt gives up saying so", end: endRan, err: noSlot, attempt: 3,
			want: want{verdict: verdictGiveUp, status: jobs.StatusFailed, errType: jobs.ErrServiceUnavail, message: "no free slot"}},
		{name: "a request that cannot be met is finished at once", end: endRan, err: unresolvable, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusFailed, errType: jobs.ErrDependency, message: "requirements: no matching distribution for nosuchpkg"}},
		{name: "a request that is not allowed is finished at once", end: endRan, err: forbidden, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusFailed, errType: jobs.ErrDependency, message: "requirements are not allowed for this job type"}},
		{name: "a remote cancel without a result is cancelled", end: endCancelled, err: context.Canceled, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusCancelled, errType: jobs.ErrCancelled, message: "the execution was cancelled"}},
		{name: "a remote cancel keeps the runner's cancelled result", end: endCancelled, res: killed, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusCancelled, errType: jobs.ErrCancelled, message: "killed by the runner"}, wantSame: killed},
		{name: "a remote cancel wins over a result that came in with it", end: endCancelled, res: succeeded, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusCancelled, errType: jobs.ErrCancelled, message: "the execution was cancelled"}},
		{name: "a remote cancel is not retried on an infrastructure failure", end: endCancelled, err: dockerDown, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusCancelled, errType: jobs.ErrCancelled, message: "the execution was cancelled"}},
		{name: "an attempt out of time without a result times out", end: endDeadline, err: context.DeadlineExceeded, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusTimeout, errType: jobs.ErrTimeout,
				message: "the execution did not finish within its attempt's 1m12s, building its requirements included"}},
		{name: "an attempt out of time whose program was killed times out", end: endDeadline, res: killed, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusTimeout, errType: jobs.ErrTimeout,
				message: "the execution did not finish within its attempt's 1m12s, building its requirements included"}},
		{name: "an attempt out of time is not retried, even with attempts left", end: endDeadline, err: dockerDown, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusTimeout, errType: jobs.ErrTimeout,
				message: "the execution did not finish within its attempt's 1m12s, building its requirements included"}},
		{name: "an attempt out of time keeps the program's own timeout", end: endDeadline, res: ownTimeout, attempt: 1,
			want: want{verdict: verdictFinish, status: jobs.StatusTimeout, errType: jobs.ErrTimeout, message: "the program ran out of its 30s"}, wantSame: ownTimeout},
		{name: "a shutdown requeues", end: endShutdown, err: context.Canceled, attempt: 1,
			want: want{verdict: verdictRequeue}},
		{name: "a shutdown on the last attempt requeues rather than gives up", end: endShutdown, err: dockerDown, attempt: 3,
			want: want{verdict: verdictRequeue}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := attemptOutcome(tc.end, tc.res, tc.err, tc.attempt, 3, limit)
			if d.verdict != tc.want.verdict {
				t.Fatalf("verdict %d, want %d", d.verdict, tc.want.verdict)
			}
			if tc.wantSame != nil && d.result != tc.wantSame {
				t.Errorf("result %+v, want the runner's own %+v", d.result, tc.wantSame)
			}
			if tc.want.status == "" {
				if d.result != nil {
					t.Errorf("result %+v, want none stored", d.result)
				}
				return
			}
			if d.result == nil {
				t.Fatalf("no result, want status %s", tc.want.status)
			}
			if d.result.Status != tc.want.status {
				t.Errorf("status %s, want %s", d.result.Status, tc.want.status)
			}
			var errType string
			var message string
			if d.result.Error != nil {
				errType, message = d.result.Error.Type, d.result.Error.Message
			}
			if errType != tc.want.errType || message != tc.want.message {
				t.Errorf("error %s %q, want %s %q", errType, message, tc.want.errType, tc.want.message)
			}
			if tc.wantSame == nil && d.result.ExitCode != -1 {
				t.Errorf("exit code %d of a result tako wrote, want -1", d.result.ExitCode)
			}
		})
	}
}

// TestEndOf: how an attempt's context ended, a remote cancel first.
func TestEndOf(t *testing.T) {
	t.Parallel()
	cancelled := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	expired := func(cause error) context.Context {
		ctx, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(-time.Second), cause)
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want attemptEnd
	}{
		{"live", context.Background(), endRan},
		{"cancelled remotely", cancelled(river.ErrJobCancelledRemotely), endCancelled},
		{"cancelled remotely, wrapped", cancelled(fmt.Errorf("job 7: %w", river.ErrJobCancelledRemotely)), endCancelled},
		{"out of time", expired(nil), endDeadline},
		{"cancelled remotely as the time ran out", expired(river.ErrJobCancelledRemotely), endCancelled},
		{"stopped", cancelled(errors.New("river: client stopping")), endShutdown},
		{"stopped without a cause", cancelled(nil), endShutdown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := endOf(tc.ctx); got != tc.want {
				t.Errorf("endOf = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second},
		{25, 30 * time.Second},
		{36, 30 * time.Second}, // 1 s << 35 overflows int64
		{1000, 30 * time.Second},
	} {
		if got := retryDelay(tc.attempt); got != tc.want {
			t.Errorf("retryDelay(%d) = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

// TestAttemptTimeout: an attempt is allowed what its job says, and a job
// queued without that gets the most an execution can take.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	w := &executeWorker{}
	for _, tc := range []struct {
		maxRunMS int64
		want     time.Duration
	}{
		{0, defaultStartup + 5*time.Minute + attemptSlack},
		{-1, defaultStartup + 5*time.Minute + attemptSlack},
		{72_000, 72 * time.Second},
	} {
		job := &river.Job[executeArgs]{Args: executeArgs{ExecutionID: "e", MaxRunMS: tc.maxRunMS}}
		if got := w.Timeout(job); got != tc.want {
			t.Errorf("Timeout with max_run_ms %d = %s, want %s", tc.maxRunMS, got, tc.want)
		}
	}
}
