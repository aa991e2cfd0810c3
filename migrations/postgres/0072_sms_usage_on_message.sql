-- A message's own SMS usage, on the message's row.
--
-- Same columns as migrations/sqlite/0072_sms_usage_on_message.sql.
--
-- A turn billed its inbound SMS and its reply as two rows of sms_usage_logs, and each row's
-- entry in the usage table's (user_id, id) index went to a leaf page of that user's: once a
-- user's entries filled pages of their own, every turn of a group commit wrote one more page
-- that no other turn of it shared, and on a grown database that page was a quarter of what the
-- commit wrote (docs/performance.md, round 25). The group-commit writer (SQLite's batch
-- thread, PostgreSQL's batch statement) now stores a message billed once, in its own direction,
-- with its usage in these columns. Any other usage (a message billed more than once, a nudge,
-- which has no message), a reply stored on its own, and the batches of an in-memory SQLite
-- database are still usage rows.
--
-- The usage stays once the message goes: the retention purge first copies the usage of the
-- messages it deletes into sms_usage_logs (pointing at no message, as the foreign key's SET
-- NULL leaves a usage row), and an erasure deletes both with the person. A reply sent through
-- Twilio's REST API has its usage moved to a usage row, which its SID and delivery status then
-- go on (src/store/deliveries.rs). A user's usage is read from both (`Store::sms_usage`).

ALTER TABLE messages ADD COLUMN sms_segments INTEGER CHECK (sms_segments > 0);
ALTER TABLE messages ADD COLUMN sms_encoding TEXT CHECK (sms_encoding IN ('GSM-7', 'UCS-2'));
ALTER TABLE messages ADD COLUMN sms_cost_micros BIGINT CHECK (sms_cost_micros >= 0);
