-- The dedupe index of inbound SMS by Twilio's MessageSid holds inbound SMS only.
--
-- Same index as migrations/sqlite/0071_provider_id_index_inbound_only.sql, which says why.
-- Here the constraint can be dropped in place; the index is built again under the same name,
-- which is the name a duplicate's error carries.

ALTER TABLE messages DROP CONSTRAINT messages_user_id_provider_message_id_key;

CREATE UNIQUE INDEX messages_user_id_provider_message_id_key
    ON messages (user_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
