package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// DeliveryResponse is one attempt to deliver a job's webhook.
type DeliveryResponse struct {
	Attempt     int     `json:"attempt"`
	URL         string  `json:"url"`
	AttemptedAt string  `json:"attempted_at"`
	DurationMS  float64 `json:"duration_ms"`
	// StatusCode is the receiver's answer; null when it gave none.
	StatusCode *int `json:"status_code"`
	// Outcome is delivered, retry, stopped (410), failed (no retries
	// left) or refused (the address may not be reached).
	Outcome       string  `json:"outcome"`
	Error         *string `json:"error"`
	Response      *string `json:"response"`
	NextAttemptAt *string `json:"next_attempt_at"`
}

// DeliveriesResponse is the body of GET /jobs/:id/deliveries.
type DeliveriesResponse struct {
	JobID       string             `json:"job_id"`
	CallbackURL *string            `json:"callback_url"`
	Deliveries  []DeliveryResponse `json:"deliveries"`
}

// RetryDeliveryResponse is the body of POST /jobs/:id/deliveries/retry.
type RetryDeliveryResponse struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"` // "queued"
}

// handleDeliveries is GET /jobs/:id/deliveries: every attempt to deliver
// the job's webhook, oldest first.
func (s *Server) handleDeliveries(c *fiber.Ctx) error {
	exec, err := s.routeExecution(c, jobNotFound)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	ds, err := s.service.Deliveries(ctx, callerOf(c), exec.ID)
	if err != nil {
		return err
	}
	r := DeliveriesResponse{JobID: exec.ID, CallbackURL: optString(exec.CallbackURL), Deliveries: make([]DeliveryResponse, len(ds))}
	for i, d := range ds {
		r.Deliveries[i] = DeliveryResponse{
			Attempt: d.Attempt, URL: d.URL, AttemptedAt: timestamp(d.AttemptedAt), DurationMS: ms(d.Duration),
			Outcome: d.Outcome, Error: optString(d.Error), Response: optString(d.Response),
			NextAttemptAt: optTimestamp(d.NextAttemptAt),
		}
		if d.StatusCode != 0 {
			code := d.StatusCode
			r.Deliveries[i].StatusCode = &code
		}
	}
	return c.JSON(r)
}

// handleRetryDelivery is POST /jobs/:id/deliveries/retry: deliver an
// ended job's webhook again, with a fresh retry schedule.
func (s *Server) handleRetryDelivery(c *fiber.Ctx) error {
	id, err := pathID(c, jobNotFound)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	switch err := s.service.RetryDelivery(ctx, callerOf(c), id); {
	case jobs.ErrorCodeOf(err) == jobs.ENOTFOUND:
		return &jobs.Error{Code: jobs.ENOTFOUND, Message: jobNotFound}
	case err != nil:
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(RetryDeliveryResponse{JobID: id, Status: "queued"})
}
