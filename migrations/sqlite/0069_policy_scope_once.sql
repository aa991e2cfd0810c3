-- Row-level security exists on PostgreSQL only (migrations/postgres/0069_policy_scope_once.sql
-- makes its policies read their scope once per statement). This file keeps the two backends'
-- migration numbers in step.
SELECT 1;
