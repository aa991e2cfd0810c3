-- Row-level security exists on PostgreSQL only (migrations/postgres/0070_batch_model_usage_policy.sql
-- lets the group-commit writer insert model usage rows). This file keeps the two backends'
-- migration numbers in step.
SELECT 1;
