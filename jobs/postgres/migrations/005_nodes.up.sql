-- The tako nodes sharing this database, and when each last said it was
-- alive. A node whose heartbeat is older than cluster.node_timeout is gone:
-- its sync executions are ended by the maintenance job.
CREATE TABLE tako_nodes (
    id           text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Running sync executions, by node: what the sweep looks for.
CREATE INDEX tako_executions_running_sync_node_idx
    ON tako_executions (node) WHERE status = 'running' AND mode = 'sync';
