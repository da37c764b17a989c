-- The dead-letter queue joins River's discarded jobs to their executions,
-- and removes or retries one entry by its River job id: both look an
-- execution up by river_job_id, which without this index reads the whole
-- history. Sync executions have no River job and are left out of it.
CREATE INDEX tako_executions_river_job_id_idx
    ON tako_executions (river_job_id) WHERE river_job_id IS NOT NULL;
