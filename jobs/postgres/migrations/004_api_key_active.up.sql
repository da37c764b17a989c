-- Per-key quotas count the queued and running executions of one API key on
-- every submission; this index holds only those, however long the history.
CREATE INDEX tako_executions_api_key_active_idx
    ON tako_executions (api_key, status) WHERE status IN ('queued', 'running');
