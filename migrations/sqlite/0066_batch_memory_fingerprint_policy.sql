-- Row-level security policies for the writer's memory fingerprints exist on PostgreSQL only
-- (migrations/postgres/0066_batch_memory_fingerprint_policy.sql). This file keeps the two
-- backends' migration numbers in step.
SELECT 1;
