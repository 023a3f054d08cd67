-- A database made by sms_responder at schema version 3 (commit b78209d), before the reply-rules,
-- operations and forwarding migrations: the migration tests start from it.
PRAGMA user_version = 3;
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE messages (
            message_uuid TEXT PRIMARY KEY,
            from_number  TEXT NOT NULL,   -- as Plivo sent it
            to_number    TEXT NOT NULL,   -- our number, as Plivo sent it
            text         TEXT NOT NULL,   -- Text, or Body for MMS
            type         TEXT NOT NULL,   -- sms, mms, ...
            media_urls   TEXT NOT NULL,   -- JSON array
            received_at  TEXT NOT NULL,
            outcome      TEXT,            -- replied, helped, stopped, started, opted_out, rate_limited, ...
            reply        TEXT,            -- the reply sent, or NULL
            v2_nonce     TEXT UNIQUE      -- V2 signatures do not cover the body: a nonce serves one message
        );
INSERT INTO messages VALUES('00000000-0000-4000-8000-000000000001','14155550123','14155550100','hello','sms','[]','2026-11-30T01:16:19.967840+00:00','replied','You said: hello',NULL);
INSERT INTO messages VALUES('00000000-0000-4000-8000-000000000002','14155550124','14155550100','STOP','sms','[]','2026-11-30T01:16:19.971888+00:00','stopped','You have been unsubscribed and will not receive any more messages from this number. Reply START to resubscribe.',NULL);
INSERT INTO messages VALUES('00000000-0000-4000-8000-000000000003','14155550124','14155550100','are you there?','sms','[]','2026-11-30T01:16:19.972982+00:00','opted_out',NULL,NULL);
INSERT INTO messages VALUES('00000000-0000-4000-8000-000000000004','14155550125','14155550100','queued please','sms','[]','2026-11-30T01:16:19.973854+00:00','replied',NULL,NULL);
CREATE TABLE opt_outs (
            number       TEXT NOT NULL,   -- the sender, as Plivo sent it
            to_number    TEXT NOT NULL,   -- our number that received the STOP, as Plivo sent it
            number_key   TEXT NOT NULL,   -- both numbers without + or spaces, so that
            to_key       TEXT NOT NULL,   -- +14155550100 and 14155550100 are one subscriber
            opted_out_at TEXT NOT NULL,
            PRIMARY KEY (number_key, to_key)
        );
INSERT INTO opt_outs VALUES('14155550124','14155550100','14155550124','14155550100','2026-11-30T01:16:19.971888+00:00');
CREATE TABLE outbox (
            message_uuid       TEXT PRIMARY KEY,  -- the inbound message this answers
            status             TEXT NOT NULL,     -- queued, sending, sent, delivered, undelivered, failed, cancelled
            src                TEXT NOT NULL,     -- our number
            dst                TEXT NOT NULL,     -- the sender
            text               TEXT,              -- NULL until the worker has run the reply function
            attempts           INTEGER NOT NULL,
            next_attempt_at    REAL NOT NULL,   -- unix time: when a queued row is due, when a claim expires
            claim_token        TEXT,              -- the claiming worker's; its later updates must match
            plivo_message_uuid TEXT UNIQUE,
            error              TEXT,              -- our last error, or Plivo's ErrorCode
            queued_at          TEXT NOT NULL
        );
INSERT INTO outbox VALUES('00000000-0000-4000-8000-000000000004','queued','14155550100','14155550125',NULL,0,1796001379.9738543033,NULL,NULL,NULL,'2026-11-30T01:16:19.973854+00:00');
CREATE TABLE delivery_reports (
            plivo_message_uuid TEXT NOT NULL,
            status             TEXT NOT NULL,     -- as Plivo reported it
            error_code         TEXT NOT NULL,     -- '' when Plivo gave none
            received_at        TEXT NOT NULL,
            v2_nonce           TEXT UNIQUE,
            PRIMARY KEY (plivo_message_uuid, status, error_code)
        );
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE INDEX messages_replies ON messages (from_number, received_at) WHERE outcome IN ('replied', 'helped');
COMMIT;
