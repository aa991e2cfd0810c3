-- What Twilio later said about an outbound SMS, on its usage row: the message SID the row is
-- for (set when Twilio accepts a REST send), the last delivery status its status callbacks
-- reported, and the price Twilio charged when a callback carried it (micro-units of
-- price_unit, positive). Inbound rows and replies answered in TwiML have no SID.
--
-- Same columns as migrations/postgres/0063_sms_usage_delivery.sql.

ALTER TABLE sms_usage_logs ADD COLUMN message_sid TEXT;
ALTER TABLE sms_usage_logs ADD COLUMN status TEXT;
ALTER TABLE sms_usage_logs ADD COLUMN price_micros INTEGER CHECK (price_micros >= 0);
ALTER TABLE sms_usage_logs ADD COLUMN price_unit TEXT;

CREATE INDEX sms_usage_logs_user_id_message_sid_idx ON sms_usage_logs (user_id, message_sid)
    WHERE message_sid IS NOT NULL;
