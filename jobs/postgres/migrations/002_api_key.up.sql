-- Which API key, by name, submitted each execution; NULL when the server
-- has no keys.
ALTER TABLE tako_executions ADD COLUMN api_key text;

-- An idempotency key belongs to the caller that used it: two callers that
-- happen to pick the same key get their own executions, and neither can
-- reach the other's through it.
DROP INDEX tako_executions_idempotency_key_idx;
CREATE UNIQUE INDEX tako_executions_idempotency_key_idx
    ON tako_executions ((coalesce(api_key, '')), idempotency_key) WHERE idempotency_key IS NOT NULL;

-- History filtered by key.
CREATE INDEX tako_executions_api_key_seq_idx ON tako_executions (api_key, seq);
