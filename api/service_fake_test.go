package api

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tako-run/tako/jobs"
)

// fakeService is a Service kept in memory. Its defaults behave like the
// real one in miniature (ids, idempotency, cancel, rerun and fork rules,
// and scoping by caller: another key's execution is ENOTFOUND);
// a test overrides a method with a func field or injects an error. It
// records what it was asked.
type fakeService struct {
	result *jobs.Result // what Execute returns as the run's result
	err    error        // returned by Execute and Submit when set
	dbErr  error        // returned by DatabaseHealth

	execute func(ctx context.Context, sub jobs.Submission) (*jobs.Execution, error)
	submit  func(ctx context.Context, sub jobs.Submission) (*jobs.Execution, bool, error)
	wait    func(ctx context.Context, id string, timeout time.Duration) (*jobs.Execution, error)
	list    func(ctx context.Context, f jobs.ExecutionFilter) (jobs.ExecutionPage, error)
	health  func(ctx context.Context) error // DatabaseHealth, when set

	mu        sync.Mutex
	seq       int
	execs     map[string]*jobs.Execution
	artifacts map[string]map[string]*jobs.ArtifactContent // by execution id, name
	calls     map[string]int
	lastCtx   context.Context
	lastSub   jobs.Submission
	lastOver  jobs.Overrides
	lastCode  string
	lastWait  time.Duration
	lastList  jobs.ExecutionFilter
	callers   []jobs.Caller // of every call on existing executions
	dead      []jobs.DeadLetter
}

// visible reports whether c may see e, as the store's scope decides.
func visible(c jobs.Caller, e *jobs.Execution) bool {
	return c.Admin || (c.APIKey != "" && c.APIKey == e.APIKey)
}

// seen records the caller of a call on existing executions.
func (f *fakeService) seen(c jobs.Caller) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callers = append(f.callers, c)
}

// lastCaller returns the caller of the last call on existing executions.
func (f *fakeService) lastCaller() jobs.Caller {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.callers) == 0 {
		return jobs.Caller{}
	}
	return f.callers[len(f.callers)-1]
}

// fakeNow is the fake's clock: every record was created at this instant.
var fakeNow = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// record stores exec, giving it an id when it has none, and returns it.
func (f *fakeService) record(exec *jobs.Execution) *jobs.Execution {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recordLocked(exec)
}

func (f *fakeService) recordLocked(exec *jobs.Execution) *jobs.Execution {
	if f.execs == nil {
		f.execs = map[string]*jobs.Execution{}
	}
	if exec.ID == "" {
		f.seq++
		exec.ID = "0195c3a8-0000-7000-8000-" + leftPad(strconv.Itoa(f.seq), 12)
	}
	if exec.CreatedAt.IsZero() {
		exec.CreatedAt = fakeNow
	}
	if exec.Attempt == 0 {
		exec.Attempt = 1
	}
	if exec.Seq == 0 {
		exec.Seq = int64(len(f.execs) + 1)
	}
	f.execs[exec.ID] = exec
	return exec
}

func leftPad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

// addArtifact stores an artifact of execution id.
func (f *fakeService) addArtifact(id string, a *jobs.ArtifactContent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.artifacts == nil {
		f.artifacts = map[string]map[string]*jobs.ArtifactContent{}
	}
	if f.artifacts[id] == nil {
		f.artifacts[id] = map[string]*jobs.ArtifactContent{}
	}
	f.artifacts[id][a.Name] = a
}

// called counts a call of method and remembers its context.
func (f *fakeService) called(ctx context.Context, method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	f.lastCtx = ctx
}

// count returns how often method was called.
func (f *fakeService) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// last returns the last submission and how many Execute and Submit calls
// there were.
func (f *fakeService) last() (jobs.Submission, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSub, f.calls["Execute"] + f.calls["Submit"]
}

func (f *fakeService) Execute(ctx context.Context, sub jobs.Submission) (*jobs.Execution, error) {
	f.called(ctx, "Execute")
	f.mu.Lock()
	f.lastSub = sub
	f.mu.Unlock()
	if f.execute != nil {
		return f.execute(ctx, sub)
	}
	if f.err != nil {
		return nil, f.err
	}
	res := f.result
	if res == nil {
		res = quickstartResult()
	}
	started, finished := fakeNow.Add(time.Millisecond), fakeNow.Add(351*time.Millisecond)
	return f.record(&jobs.Execution{
		APIKey: sub.APIKey, Code: sub.Code, CorrelationID: sub.CorrelationID, InputJSON: sub.InputJSON, JobType: sub.JobType,
		Mode: sub.Mode, Status: res.Status, Result: res, StartedAt: &started, FinishedAt: &finished,
		Timeout: sub.Timeout,
	}), nil
}

func (f *fakeService) Submit(ctx context.Context, sub jobs.Submission) (*jobs.Execution, bool, error) {
	f.called(ctx, "Submit")
	f.mu.Lock()
	f.lastSub = sub
	f.mu.Unlock()
	if f.submit != nil {
		return f.submit(ctx, sub)
	}
	if f.err != nil {
		return nil, false, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if sub.IdempotencyKey != "" {
		for _, e := range f.execs {
			if e.IdempotencyKey != sub.IdempotencyKey || e.APIKey != sub.APIKey {
				continue
			}
			if e.Code != sub.Code || string(e.InputJSON) != string(sub.InputJSON) || e.JobType != sub.JobType || e.Timeout != sub.Timeout {
				return nil, false, jobs.Errorf(jobs.ECONFLICT, "idempotency key %s belongs to another payload", sub.IdempotencyKey)
			}
			return e, false, nil
		}
	}
	queued := 0
	for _, e := range f.execs {
		if e.Status == jobs.StatusQueued {
			queued++
		}
	}
	return f.recordLocked(&jobs.Execution{
		APIKey: sub.APIKey, Code: sub.Code, CorrelationID: sub.CorrelationID, IdempotencyKey: sub.IdempotencyKey,
		InputJSON: sub.InputJSON, JobType: sub.JobType, Mode: sub.Mode, Status: jobs.StatusQueued,
		QueuePosition: queued + 1, Timeout: sub.Timeout,
	}), true, nil
}

func (f *fakeService) Get(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error) {
	f.called(ctx, "Get")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.execs[id]; ok && visible(c, e) {
		c := *e
		return &c, nil
	}
	return nil, jobs.Errorf(jobs.ENOTFOUND, "execution %s not found", id)
}

func (f *fakeService) Wait(ctx context.Context, c jobs.Caller, id string, timeout time.Duration) (*jobs.Execution, error) {
	f.called(ctx, "Wait")
	f.mu.Lock()
	f.lastWait = timeout
	f.mu.Unlock()
	if f.wait != nil {
		f.seen(c)
		return f.wait(ctx, id, timeout)
	}
	e, err := f.Get(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if !e.Terminal() {
		return nil, jobs.Errorf(jobs.ETIMEOUT, "job %s still %s after %v", id, e.Status, timeout)
	}
	return e, nil
}

func (f *fakeService) Cancel(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error) {
	f.called(ctx, "Cancel")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.execs[id]
	switch {
	case !ok || !visible(c, e):
		return nil, jobs.Errorf(jobs.ENOTFOUND, "execution %s not found", id)
	case e.Terminal():
		return nil, jobs.Errorf(jobs.ENOTFOUND, "Job not found or already completed")
	}
	finished := fakeNow.Add(time.Second)
	e.Status, e.FinishedAt, e.QueuePosition = jobs.StatusCancelled, &finished, 0
	cp := *e
	return &cp, nil
}

func (f *fakeService) Rerun(ctx context.Context, c jobs.Caller, id string, o jobs.Overrides) (*jobs.Execution, error) {
	f.called(ctx, "Rerun")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastOver = o
	parent, ok := f.execs[id]
	switch {
	case !ok || !visible(c, parent):
		return nil, jobs.Errorf(jobs.ENOTFOUND, "execution %s not found", id)
	case !parent.Terminal():
		return nil, jobs.Errorf(jobs.ENOTREADY, "Cannot rerun job that hasn't completed")
	}
	return f.child(c, parent, parent.Code, o, jobs.RelRerun), nil
}

func (f *fakeService) Fork(ctx context.Context, c jobs.Caller, id, code string, o jobs.Overrides) (*jobs.Execution, error) {
	f.called(ctx, "Fork")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastOver, f.lastCode = o, code
	parent, ok := f.execs[id]
	if !ok || !visible(c, parent) {
		return nil, jobs.Errorf(jobs.ENOTFOUND, "execution %s not found", id)
	}
	return f.child(c, parent, code, o, jobs.RelFork), nil
}

// child records a queued execution of c made from parent. f.mu is held.
func (f *fakeService) child(c jobs.Caller, parent *jobs.Execution, code string, o jobs.Overrides, rel jobs.Relationship) *jobs.Execution {
	jt, timeout := parent.JobType, parent.Timeout
	if o.JobType != "" {
		jt = o.JobType
	}
	if o.Timeout != 0 {
		timeout = o.Timeout
	}
	return f.recordLocked(&jobs.Execution{
		APIKey: c.APIKey, Code: code, InputJSON: parent.InputJSON, JobType: jt, Timeout: timeout, Status: jobs.StatusQueued,
		QueuePosition: 1, ParentID: parent.ID, Relationship: rel, Mode: jobs.ModeAsync,
	})
}

func (f *fakeService) Artifact(ctx context.Context, c jobs.Caller, id, name string) (*jobs.ArtifactContent, error) {
	f.called(ctx, "Artifact")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.execs[id]; ok && !visible(c, e) {
		return nil, jobs.Errorf(jobs.ENOTFOUND, "artifact %s of %s not found", name, id)
	}
	if a, ok := f.artifacts[id][name]; ok {
		return a, nil
	}
	return nil, jobs.Errorf(jobs.ENOTFOUND, "artifact %s of %s not found", name, id)
}

func (f *fakeService) List(ctx context.Context, c jobs.Caller, filter jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
	f.called(ctx, "List")
	f.seen(c)
	f.mu.Lock()
	f.lastList = filter
	f.mu.Unlock()
	if f.list != nil {
		return f.list(ctx, filter)
	}
	// The recorded executions c may see, newest (highest id) first.
	f.mu.Lock()
	defer f.mu.Unlock()
	page := jobs.ExecutionPage{Items: []*jobs.Execution{}}
	for _, e := range f.execs {
		if visible(c, e) && (filter.APIKey == "" || filter.APIKey == e.APIKey) {
			cp := *e
			page.Items = append(page.Items, &cp)
		}
	}
	slices.SortFunc(page.Items, func(a, b *jobs.Execution) int { return strings.Compare(b.ID, a.ID) })
	return page, nil
}

func (f *fakeService) DatabaseHealth(ctx context.Context) error {
	f.called(ctx, "DatabaseHealth")
	if f.health != nil {
		return f.health(ctx)
	}
	return f.dbErr
}

func (f *fakeService) Queued(ctx context.Context) (int, int, error) {
	f.called(ctx, "Queued")
	return 3, 1000, f.dbErr
}

// deadVisible reports whether c may see the dead letter d.
func deadVisible(c jobs.Caller, d jobs.DeadLetter) bool {
	return c.Admin || (c.APIKey != "" && c.APIKey == d.APIKey)
}

func (f *fakeService) DeadLetters(ctx context.Context, c jobs.Caller, filter jobs.DeadLetterFilter) (jobs.DeadLetterPage, error) {
	f.called(ctx, "DeadLetters")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []jobs.DeadLetter
	for _, d := range f.dead {
		if deadVisible(c, d) && (filter.ErrorType == "" || d.ErrorType == filter.ErrorType) {
			all = append(all, d)
		}
	}
	all = all[min(filter.Offset, len(all)):]
	page := jobs.DeadLetterPage{Items: all[:min(filter.Limit, len(all))]}
	page.HasMore = len(all) > filter.Limit
	return page, nil
}

func (f *fakeService) DeadLetterStats(ctx context.Context, c jobs.Caller) (jobs.DeadLetterStats, error) {
	f.called(ctx, "DeadLetterStats")
	f.seen(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	st := jobs.DeadLetterStats{ByErrorType: map[string]int{}}
	for _, d := range f.dead {
		if deadVisible(c, d) {
			st.Total++
			st.ByErrorType[d.ErrorType]++
		}
	}
	return st, nil
}

// takeDead removes and returns the dead letter id that c may see.
func (f *fakeService) takeDead(c jobs.Caller, id int64) (jobs.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.dead {
		if d.ID == id && deadVisible(c, d) {
			f.dead = append(f.dead[:i], f.dead[i+1:]...)
			return d, nil
		}
	}
	return jobs.DeadLetter{}, jobs.Errorf(jobs.ENOTFOUND, "DLQ entry not found")
}

func (f *fakeService) RemoveDeadLetter(ctx context.Context, c jobs.Caller, id int64) error {
	f.called(ctx, "RemoveDeadLetter")
	f.seen(c)
	_, err := f.takeDead(c, id)
	return err
}

func (f *fakeService) RetryDeadLetter(ctx context.Context, c jobs.Caller, id int64) (*jobs.Execution, error) {
	f.called(ctx, "RetryDeadLetter")
	f.seen(c)
	d, err := f.takeDead(c, id)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.execs[d.ExecutionID]
	if !ok {
		return nil, jobs.Errorf(jobs.ENOTFOUND, "DLQ entry not found")
	}
	e.Status, e.FinishedAt, e.Result = jobs.StatusQueued, nil, nil
	cp := *e
	return &cp, nil
}
