-- What each node does: all, api or worker, and the job types it can run
-- now (served by its configuration and available on its engine). An api
-- node answers 503 for a job type no live node runs.
ALTER TABLE tako_nodes ADD COLUMN role text NOT NULL DEFAULT 'all';
ALTER TABLE tako_nodes ADD COLUMN job_types text[] NOT NULL DEFAULT '{}';

-- Running executions, by node: what the leader looks for when a node goes
-- silent, sync or async.
CREATE INDEX tako_executions_running_node_idx
    ON tako_executions (node) WHERE status = 'running';
DROP INDEX tako_executions_running_sync_node_idx;
