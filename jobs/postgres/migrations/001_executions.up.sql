-- One row per execution: what was asked (enough to replay it) and, once it
-- ended, what happened. The API reads only this table; River carries the work.
CREATE TABLE tako_executions (
    id                 uuid PRIMARY KEY,
    seq                bigserial NOT NULL UNIQUE,
    status             text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timeout', 'oom', 'cancelled')),
    mode               text NOT NULL CHECK (mode IN ('sync', 'async')),
    job_type           text NOT NULL,
    code               text NOT NULL,
    -- input and output are json, not jsonb: replay must hand the program
    -- its input exactly as sent (jsonb reorders keys), and callers see
    -- result.json's keys in the order the program wrote them.
    input              json NOT NULL,
    requirements       text[] NOT NULL DEFAULT '{}',
    timeout_ms         bigint NOT NULL,
    startup_timeout_ms bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    attempt            int NOT NULL DEFAULT 0,
    node               text,
    runtime            text,
    start_kind         text CHECK (start_kind IN ('warm', 'cold')),
    image              text,
    exit_code          int,
    stdout             text,
    stderr             text,
    stdout_truncated   bool NOT NULL DEFAULT false,
    stderr_truncated   bool NOT NULL DEFAULT false,
    output             json,
    error              jsonb,  -- {"type": ..., "message": ...}
    timing             jsonb,  -- {"queue_ms", "start_ms", "run_ms", "collect_ms", "total_ms"}: float milliseconds
    idempotency_key    text,
    fingerprint        text,
    parent_id          uuid REFERENCES tako_executions (id) ON DELETE SET NULL,
    relationship       text CHECK (relationship IN ('rerun', 'fork')),
    correlation_id     text,
    river_job_id       bigint
);

-- Concurrent submissions with one key are resolved here, by the database.
CREATE UNIQUE INDEX tako_executions_idempotency_key_idx
    ON tako_executions (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Queue positions and filtered history.
CREATE INDEX tako_executions_status_job_type_seq_idx ON tako_executions (status, job_type, seq);
CREATE INDEX tako_executions_job_type_seq_idx ON tako_executions (job_type, seq);
-- Retention.
CREATE INDEX tako_executions_created_at_idx ON tako_executions (created_at);
-- Rerun and fork lineage; also keeps ON DELETE SET NULL cheap.
CREATE INDEX tako_executions_parent_id_idx ON tako_executions (parent_id);

-- Artifacts with their bytes, so that any node can serve them.
CREATE TABLE tako_artifacts (
    execution_id uuid NOT NULL REFERENCES tako_executions (id) ON DELETE CASCADE,
    name         text NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       text NOT NULL,
    content      bytea NOT NULL,
    PRIMARY KEY (execution_id, name)
);
