-- Row-level security policies for the group-commit writer exist on PostgreSQL only
-- (migrations/postgres/0043_batch_write_policy.sql). This file keeps the two backends'
-- migration numbers in step.
SELECT 1;
