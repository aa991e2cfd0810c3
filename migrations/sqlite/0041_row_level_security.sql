-- Row-level security exists on PostgreSQL only (migrations/postgres/0041_row_level_security.sql).
-- An embedded SQLite database has one user, the node itself: the store's per-user scoping is
-- its only wall. This file keeps the two backends' migration numbers in step.
SELECT 1;
