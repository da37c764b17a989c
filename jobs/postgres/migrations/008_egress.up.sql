-- A request's narrowing of its job type's egress allowlist; NULL keeps
-- the job type's list.
ALTER TABLE tako_executions ADD COLUMN network_allow text[];

-- The connections the job asked the egress proxy for: host, port,
-- allowed, refused or failed, and the bytes each way. NULL when its job
-- type has no allowlist.
ALTER TABLE tako_executions ADD COLUMN egress jsonb;
