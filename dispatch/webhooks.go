package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/webhook"
)

// Webhooks configure the signed callbacks a Dispatcher sends when jobs
// end. With no Secrets and no KeySecrets, a callback_url is refused.
type Webhooks struct {
	// Policy says which callback URLs may be used and dialled.
	Policy webhook.Policy
	// Secrets sign every webhook (webhooks.secret), unless its API key
	// has its own.
	Secrets []webhook.Secret
	// KeySecrets sign the webhooks of an API key's jobs, by key name.
	KeySecrets map[string][]webhook.Secret
	// KeyCallbacks are the default callback URLs of API keys, by name.
	KeyCallbacks map[string]string
	// Schedule is the wait before each retry; its length bounds them.
	Schedule []time.Duration
	// Timeout bounds one attempt; 0 means webhook.DefaultTimeout.
	Timeout time.Duration
	// Render is the body of an ended execution's webhook: the JSON of its
	// GET /jobs/{id}/result.
	Render func(e *jobs.Execution) ([]byte, error)
}

// webhookQueue is the River queue of webhook deliveries.
const webhookQueue = "webhooks"

// webhookWorkers is how many deliveries one node makes at once.
const webhookWorkers = 10

// deliverArgs is the River job that delivers one execution's webhook: one
// attempt per run, snoozed between attempts as the schedule says.
type deliverArgs struct {
	ExecutionID string `json:"execution_id"`
	// First is the number of the first attempt this job makes: 1, or one
	// past those recorded when a delivery is retried by hand.
	First int `json:"first"`
}

// Kind implements river.JobArgs.
func (deliverArgs) Kind() string { return "tako_webhook" }

// resolveCallback sets sub's callback URL: the request's, else its API
// key's default, else the job type's (jobTypeURL). It refuses, as a 422 on
// callback_url, one that webhooks may not reach, or any when there is no
// secret to sign with.
func (s *Dispatcher) resolveCallback(ctx context.Context, sub *jobs.Submission, jobTypeURL string) error {
	w := s.opts.Webhooks
	url := cmp.Or(sub.CallbackURL, w.KeyCallbacks[sub.APIKey], jobTypeURL)
	if url == "" {
		return nil
	}
	if len(s.secretsOf(sub.APIKey)) == 0 {
		return jobs.FieldErrorf("callback_url", "this server has no webhook secret to sign callbacks with: set webhooks.secret")
	}
	if err := webhook.CheckURL(ctx, url, w.Policy); err != nil {
		return jobs.FieldErrorf("callback_url", "%q %v", jobs.Truncate(url, 200), err)
	}
	sub.CallbackURL = url
	return nil
}

// secretsOf returns the secrets that sign the webhooks of API key apiKey's
// jobs.
func (s *Dispatcher) secretsOf(apiKey string) []webhook.Secret {
	if own := s.opts.Webhooks.KeySecrets[apiKey]; len(own) > 0 {
		return own
	}
	return s.opts.Webhooks.Secrets
}

// enqueueDelivery queues the delivery of execution id's webhook within tx,
// the transaction that ends it (or asks again), so neither is lost
// without the other. first is the number of its first attempt.
func (s *Dispatcher) enqueueDelivery(ctx context.Context, tx pgx.Tx, id string, first int) error {
	_, err := s.river.InsertTx(ctx, tx, deliverArgs{ExecutionID: id, First: first}, &river.InsertOpts{Queue: webhookQueue})
	if err != nil {
		return fmt.Errorf("queue webhook: %w", err)
	}
	return nil
}

// RetryDelivery delivers execution id's webhook again, with a fresh
// schedule, as c may see it: ENOTFOUND when c may not, ENOTREADY while it
// runs, ECONFLICT when it has no callback URL.
func (s *Dispatcher) RetryDelivery(ctx context.Context, c jobs.Caller, id string) error {
	e, err := s.Get(ctx, c, id)
	if err != nil {
		return err
	}
	switch {
	case !e.Terminal():
		return jobs.Errorf(jobs.ENOTREADY, "the job has not ended; its webhook goes when it does")
	case e.CallbackURL == "":
		return jobs.Errorf(jobs.ECONFLICT, "the job has no callback_url")
	}
	n, err := s.store.DeliveryCount(ctx, id)
	if err != nil {
		return s.dbError("retry delivery", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.enqueueDelivery(ctx, tx, id, n+1) })
	if err != nil {
		return s.dbError("retry delivery", err)
	}
	return nil
}

// Deliveries returns the recorded attempts to deliver execution id's
// webhook, as c may see it.
func (s *Dispatcher) Deliveries(ctx context.Context, c jobs.Caller, id string) ([]jobs.Delivery, error) {
	d, err := s.store.Deliveries(ctx, c, id)
	if err != nil {
		return nil, s.dbError("read deliveries", err)
	}
	return d, nil
}

// deliverWorker makes one attempt per run at delivering a webhook.
type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	s      *Dispatcher
	client *http.Client
}

// Timeout bounds a run: the attempt's own timeout and the records.
func (w *deliverWorker) Timeout(*river.Job[deliverArgs]) time.Duration {
	return w.client.Timeout + 30*time.Second
}

// Work makes the next attempt, records it, and snoozes the job until the
// one after when the schedule says to retry. Errors are tako's own (the
// database): River retries those.
func (w *deliverWorker) Work(ctx context.Context, job *river.Job[deliverArgs]) error {
	s, id := w.s, job.Args.ExecutionID
	e, err := s.store.Get(ctx, jobs.System, id)
	if jobs.ErrorCodeOf(err) == jobs.ENOTFOUND {
		return river.JobCancel(fmt.Errorf("execution %s no longer exists", id))
	}
	if err != nil {
		return fmt.Errorf("get execution: %w", err)
	}
	if e.CallbackURL == "" || !e.Terminal() {
		return nil
	}
	n, err := s.store.DeliveryCount(ctx, id)
	if err != nil {
		return err
	}
	d := jobs.Delivery{Attempt: n + 1, URL: e.CallbackURL, AttemptedAt: time.Now()}
	step := d.Attempt - max(job.Args.First, 1) + 1
	if err := webhook.CheckURL(ctx, e.CallbackURL, s.opts.Webhooks.Policy); err != nil {
		// The settings changed since the submit, or the name now resolves
		// elsewhere: never retried.
		d.Outcome, d.Error = "refused", err.Error()
		return w.record(ctx, e, d, nil)
	}
	body, err := s.opts.Webhooks.Render(e)
	if err != nil {
		return fmt.Errorf("render webhook: %w", err)
	}
	a := webhook.Deliver(ctx, w.client, e.CallbackURL, s.secretsOf(e.APIKey), webhook.Message{ID: e.ID, Timestamp: d.AttemptedAt, Body: body})
	d.Duration, d.StatusCode, d.Error, d.Response = a.Duration, a.StatusCode, a.Error, a.ResponseSnippet
	next := webhook.Decide(step, a, s.opts.Webhooks.Schedule)
	d.Outcome = string(next.Outcome)
	var snooze error
	if next.Outcome == webhook.Retry {
		at := time.Now().Add(next.Delay)
		d.NextAttemptAt = &at
		snooze = river.JobSnooze(next.Delay)
	}
	return w.record(ctx, e, d, snooze)
}

// record stores attempt d of e's webhook, counts it, and returns then,
// what Work returns when the record is stored.
func (w *deliverWorker) record(ctx context.Context, e *jobs.Execution, d jobs.Delivery, then error) error {
	if err := w.s.store.AddDelivery(ctx, e.ID, d); err != nil {
		return err
	}
	var sinceEnd time.Duration
	if e.FinishedAt != nil {
		sinceEnd = time.Since(*e.FinishedAt)
	}
	w.s.opts.Metrics.WebhookAttempt(d.Outcome, d.Duration, sinceEnd)
	log := w.s.jobLogger(e).With("attempt", d.Attempt, "outcome", d.Outcome, "status_code", d.StatusCode)
	if d.Outcome == string(webhook.Delivered) {
		log.Info("webhook delivered")
	} else {
		log.Warn("webhook not delivered", "error", d.Error)
	}
	return then
}
