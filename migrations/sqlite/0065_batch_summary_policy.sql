-- Row-level security policies for summary folds carried by the group-commit writer exist on
-- PostgreSQL only (migrations/postgres/0065_batch_summary_policy.sql). This file keeps the
-- two backends' migration numbers in step.
SELECT 1;
