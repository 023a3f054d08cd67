-- A database made by sms_responder at schema version 9 (commit b9b1571), before the team's inbox:
-- two customers' messages (+14155550124's with '+' as Plivo may send it), an owner's relay to the first
-- ("@14155550123 ..."), a purged message, and an outbound message to a third customer, delivered. The
-- rows name their columns (and leave the outbox's id to the database), so that they load into PostgreSQL too.
PRAGMA user_version = 9;
BEGIN TRANSACTION;
CREATE TABLE api_requests (          -- Idempotency-Key: the first answer of a key, for 24 h
            token        TEXT NOT NULL,         -- the token's name
            key          TEXT NOT NULL,
            body_digest  TEXT NOT NULL,         -- SHA-256 of the request's JSON, keys sorted
            outbox_id    BIGINT NOT NULL,
            status       TEXT NOT NULL,         -- the status first answered: queued or scheduled
            created_at   TEXT NOT NULL,
            PRIMARY KEY (token, key)
        );
CREATE TABLE api_tokens (
            name         TEXT PRIMARY KEY,
            digest       TEXT NOT NULL UNIQUE,  -- SHA-256 of the token, which is never stored
            created_at   TEXT NOT NULL,
            last_used_at TEXT
        , scopes TEXT NOT NULL DEFAULT 'send,read');
CREATE TABLE consent_changes (
            number       TEXT NOT NULL,         -- the customer, digits
            to_number    TEXT NOT NULL,         -- our number, digits
            change       TEXT NOT NULL,         -- "opted out" or "opted in"
            changed_by   TEXT NOT NULL,         -- the person
            changed_at   TEXT NOT NULL
        );
CREATE TABLE delivery_reports (
            plivo_message_uuid TEXT NOT NULL,
            status             TEXT NOT NULL,     -- as Plivo reported it
            error_code         TEXT NOT NULL,     -- '' when Plivo gave none
            received_at        TEXT NOT NULL,
            v2_nonce           TEXT UNIQUE,
            PRIMARY KEY (plivo_message_uuid, status, error_code)
        );
CREATE TABLE login_failures (
            name         TEXT NOT NULL,         -- as typed: names no one has count too
            failed_at    TEXT NOT NULL
        );
CREATE TABLE "messages" (
                message_uuid TEXT PRIMARY KEY,
                from_number  TEXT,            -- as Plivo sent it; NULL once purged
                to_number    TEXT,            -- our number, as Plivo sent it; NULL once purged
                text         TEXT,            -- Text, or Body for MMS; NULL once purged
                type         TEXT NOT NULL,   -- sms, mms, ...
                media_urls   TEXT,            -- JSON array; NULL once purged
                received_at  TEXT NOT NULL,
                outcome      TEXT,            -- replied, helped, stopped, started, opted_out, rate_limited, ...
                reply        TEXT,            -- the reply sent, or NULL
                v2_nonce     TEXT,            -- V2 signatures do not cover the body: a nonce serves one message
                rule         TEXT             -- the reply rule that matched, NULL when none did
            , forwarded_to TEXT, relayed_to TEXT);
CREATE TABLE opt_outs (
            number       TEXT NOT NULL,   -- the sender, as Plivo sent it
            to_number    TEXT NOT NULL,   -- our number that received the STOP, as Plivo sent it
            number_key   TEXT NOT NULL,   -- both numbers without + or spaces, so that
            to_key       TEXT NOT NULL,   -- +14155550100 and 14155550100 are one subscriber
            opted_out_at TEXT NOT NULL,
            PRIMARY KEY (number_key, to_key)
        );
CREATE TABLE "outbox" (
                id                 INTEGER PRIMARY KEY,
                public_id          TEXT UNIQUE,       -- an outbound message's ID in the API; NULL for the others
                message_uuid       TEXT,              -- the inbound message this answers; NULL for outbound
                kind               TEXT NOT NULL,     -- reply (to the sender, or an owner's relay), forward, outbound
                status             TEXT NOT NULL,     -- scheduled, queued, sending, sent, delivered, undelivered,
                                                      -- failed, cancelled
                src                TEXT,              -- our number; NULL once purged
                dst                TEXT,              -- the sender, a customer or an owner; NULL once purged
                text               TEXT,              -- NULL until the worker has run the reply function
                media_urls         TEXT,              -- outbound MMS: a JSON array; NULL for a text
                attempts           INTEGER NOT NULL,
                next_attempt_at    REAL NOT NULL,     -- unix time: when a queued row is due, when a claim expires
                claim_token        TEXT,              -- the claiming worker's; its later updates must match
                plivo_message_uuid TEXT UNIQUE,
                error              TEXT,              -- our last error, or Plivo's ErrorCode
                queued_at          TEXT NOT NULL,     -- when it was queued (an outbound message's created_at)
                send_at            TEXT,              -- outbound: when it was asked to leave; NULL: at once
                sent_at            TEXT,              -- when Plivo accepted it
                sent_by            TEXT,              -- outbound: the API token's name, a person's, or "cli"
                sent_via           TEXT               -- outbound: api, cli or inbox
            );
CREATE TABLE sessions (
            digest       TEXT PRIMARY KEY,      -- SHA-256 of the cookie's token, which is never stored
            name         TEXT NOT NULL,         -- the person
            created_at   TEXT NOT NULL,  -- a session lasts 7 days at most ...
            seen_at      TEXT NOT NULL   -- ... and INBOX_SESSION_HOURS without a request
        );
CREATE TABLE users (
            name         TEXT PRIMARY KEY,
            password     TEXT NOT NULL,         -- Argon2id, as a PHC string
            created_at   TEXT NOT NULL
        );
CREATE INDEX messages_by_sender ON messages (from_number, outcome, received_at);
CREATE UNIQUE INDEX messages_v2_nonce ON messages (v2_nonce) WHERE v2_nonce IS NOT NULL;
CREATE INDEX messages_by_time ON messages (received_at);
CREATE INDEX messages_to_purge ON messages (received_at) WHERE from_number IS NOT NULL;
CREATE INDEX opt_outs_by_time ON opt_outs (opted_out_at);
CREATE INDEX delivery_reports_by_time ON delivery_reports (received_at);
CREATE INDEX messages_forwarded_by_sender ON messages (from_number, received_at) WHERE forwarded_to IS NOT NULL;
CREATE INDEX messages_forwarded_by_number ON messages (to_number, received_at) WHERE forwarded_to IS NOT NULL;
CREATE INDEX outbox_by_time ON outbox (queued_at);
CREATE INDEX outbox_by_message ON outbox (message_uuid);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('scheduled', 'queued', 'sending');
CREATE INDEX outbox_outbound_by_dst ON outbox (dst, queued_at) WHERE kind = 'outbound';
CREATE INDEX outbox_outbound_by_time ON outbox (queued_at) WHERE kind = 'outbound';
CREATE INDEX outbox_by_token ON outbox (sent_by, queued_at) WHERE sent_via = 'api';
CREATE INDEX api_requests_by_time ON api_requests (created_at);
CREATE INDEX sessions_by_name ON sessions (name);
CREATE INDEX sessions_by_use ON sessions (seen_at);
CREATE INDEX login_failures_by_name ON login_failures (name, failed_at);
CREATE INDEX consent_changes_by_number ON consent_changes (number, to_number, changed_at);
CREATE INDEX messages_relayed ON messages (relayed_to, received_at) WHERE relayed_to IS NOT NULL;
CREATE INDEX login_failures_by_time ON login_failures (failed_at);
INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls, received_at, outcome, reply, rule, forwarded_to, relayed_to) VALUES ('release9-message-0001', '14155550123', '14155550100', 'Is my bouquet ready?', 'sms', '[]', '2026-12-01T09:00:00.000000+00:00', 'replied', 'You said: Is my bouquet ready?', NULL, '14155550188', NULL);
INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls, received_at, outcome, reply, rule, forwarded_to, relayed_to) VALUES ('release9-message-0002', '+14155550124', '+14155550100', 'Can I collect the tulips tomorrow?', 'sms', '[]', '2026-12-01T09:05:00.000000+00:00', 'replied', 'You said: Can I collect the tulips tomorrow?', NULL, '14155550188', NULL);
INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls, received_at, outcome, reply, rule, forwarded_to, relayed_to) VALUES ('release9-message-0003', '14155550188', '14155550100', '@14155550123 Yes, ready at noon', 'sms', '[]', '2026-12-01T09:10:00.000000+00:00', 'relayed', 'Yes, ready at noon', NULL, NULL, '14155550123');
INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls, received_at, outcome, reply, rule, forwarded_to, relayed_to) VALUES ('release9-message-0004', NULL, NULL, NULL, 'sms', NULL, '2026-08-01T09:00:00.000000+00:00', 'replied', NULL, NULL, NULL, NULL);
INSERT INTO outbox (public_id, message_uuid, kind, status, src, dst, text, media_urls, attempts, next_attempt_at, claim_token, plivo_message_uuid, error, queued_at, send_at, sent_at, sent_by, sent_via) VALUES ('release9-outbound-0001', NULL, 'outbound', 'delivered', '14155550100', '14155550125', 'Your peonies have shipped.', NULL, 1, 1796115610.0, NULL, 'plivo-release9-0001', NULL, '2026-12-01T09:15:00.000000+00:00', NULL, '2026-12-01T09:15:01.000000+00:00', 'cli', 'cli');
COMMIT;
