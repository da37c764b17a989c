-- Where a job's webhook goes when it ends, resolved at submit (request,
-- API key, job type); NULL when it has none.
ALTER TABLE tako_executions ADD COLUMN callback_url text;

-- A running job's output, as the node running it flushes it (every 50 ms
-- or 16 KiB), for event streams on any node. seq orders one job's rows;
-- kind is started, stdout, stderr or truncated; "offset" is the byte
-- offset of data within its stream. The rows are deleted when the job's
-- record is written (unless streaming.keep_chunks), since the record then
-- holds the whole output.
CREATE TABLE tako_output_chunks (
    execution_id uuid NOT NULL REFERENCES tako_executions (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    kind         text NOT NULL,
    "offset"     bigint NOT NULL DEFAULT 0,
    data         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (execution_id, seq)
);

-- Every attempt to deliver a job's webhook, in order.
CREATE TABLE tako_webhook_deliveries (
    id              bigserial PRIMARY KEY,
    execution_id    uuid NOT NULL REFERENCES tako_executions (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    url             text NOT NULL,
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    duration_ms     double precision NOT NULL DEFAULT 0,
    status_code     integer,
    outcome         text NOT NULL,
    error           text,
    response        text,
    next_attempt_at timestamptz,
    UNIQUE (execution_id, attempt)
);
