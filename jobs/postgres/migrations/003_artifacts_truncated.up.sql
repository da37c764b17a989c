-- Whether artifacts were left out because of the artifact limits, so that a
-- caller never loses files without being told.
ALTER TABLE tako_executions ADD COLUMN artifacts_truncated bool NOT NULL DEFAULT false;
