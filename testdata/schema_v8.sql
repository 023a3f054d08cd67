-- A database made by sms_responder at schema version 8 (commit 5dcb1c3), before token scopes: two API
-- tokens (orders: smsr_orders-token-made-before-scopes-existed-0000, bookings:
-- smsr_bookings-token-made-before-scopes-existed-00; only their digests are stored), a message queued
-- by each and one by `text`, alice with a hash of older Argon2 parameters (m=8192, t=1, p=1; her
-- password is "correct horse battery staple"), and failed logins long past. The rows name their
-- columns (and leave the outbox's id to the database), so that they load into PostgreSQL too.
PRAGMA user_version = 8;
BEGIN TRANSACTION;
CREATE TABLE opt_outs (
            number       TEXT NOT NULL,   -- the sender, as Plivo sent it
            to_number    TEXT NOT NULL,   -- our number that received the STOP, as Plivo sent it
            number_key   TEXT NOT NULL,   -- both numbers without + or spaces, so that
            to_key       TEXT NOT NULL,   -- +14155550100 and 14155550100 are one subscriber
            opted_out_at TEXT NOT NULL,
            PRIMARY KEY (number_key, to_key)
        );
CREATE TABLE delivery_reports (
            plivo_message_uuid TEXT NOT NULL,
            status             TEXT NOT NULL,     -- as Plivo reported it
            error_code         TEXT NOT NULL,     -- '' when Plivo gave none
            received_at        TEXT NOT NULL,
            v2_nonce           TEXT UNIQUE,
            PRIMARY KEY (plivo_message_uuid, status, error_code)
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
CREATE INDEX messages_by_sender ON messages (from_number, outcome, received_at);
CREATE UNIQUE INDEX messages_v2_nonce ON messages (v2_nonce) WHERE v2_nonce IS NOT NULL;
CREATE INDEX messages_by_time ON messages (received_at);
CREATE INDEX messages_to_purge ON messages (received_at) WHERE from_number IS NOT NULL;
CREATE INDEX opt_outs_by_time ON opt_outs (opted_out_at);
CREATE INDEX delivery_reports_by_time ON delivery_reports (received_at);
CREATE INDEX messages_forwarded_by_sender ON messages (from_number, received_at) WHERE forwarded_to IS NOT NULL;
CREATE INDEX messages_forwarded_by_number ON messages (to_number, received_at) WHERE forwarded_to IS NOT NULL;
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
CREATE INDEX outbox_by_time ON outbox (queued_at);
CREATE INDEX outbox_by_message ON outbox (message_uuid);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('scheduled', 'queued', 'sending');
CREATE INDEX outbox_outbound_by_dst ON outbox (dst, queued_at) WHERE kind = 'outbound';
CREATE INDEX outbox_outbound_by_time ON outbox (queued_at) WHERE kind = 'outbound';
CREATE INDEX outbox_by_token ON outbox (sent_by, queued_at) WHERE sent_via = 'api';
CREATE TABLE api_tokens (
            name         TEXT PRIMARY KEY,
            digest       TEXT NOT NULL UNIQUE,  -- SHA-256 of the token, which is never stored
            created_at   TEXT NOT NULL,
            last_used_at TEXT
        );
CREATE TABLE api_requests (          -- Idempotency-Key: the first answer of a key, for 24 h
            token        TEXT NOT NULL,         -- the token's name
            key          TEXT NOT NULL,
            body_digest  TEXT NOT NULL,         -- SHA-256 of the request's JSON, keys sorted
            outbox_id    BIGINT NOT NULL,
            status       TEXT NOT NULL,         -- the status first answered: queued or scheduled
            created_at   TEXT NOT NULL,
            PRIMARY KEY (token, key)
        );
CREATE INDEX api_requests_by_time ON api_requests (created_at);
CREATE TABLE users (
            name         TEXT PRIMARY KEY,
            password     TEXT NOT NULL,         -- Argon2id, as a PHC string
            created_at   TEXT NOT NULL
        );
CREATE TABLE sessions (
            digest       TEXT PRIMARY KEY,      -- SHA-256 of the cookie's token, which is never stored
            name         TEXT NOT NULL,         -- the person
            created_at   TEXT NOT NULL,  -- a session lasts 7 days at most ...
            seen_at      TEXT NOT NULL   -- ... and INBOX_SESSION_HOURS without a request
        );
CREATE INDEX sessions_by_name ON sessions (name);
CREATE INDEX sessions_by_use ON sessions (seen_at);
CREATE TABLE login_failures (
            name         TEXT NOT NULL,         -- as typed: names no one has count too
            failed_at    TEXT NOT NULL
        );
CREATE INDEX login_failures_by_name ON login_failures (name, failed_at);
CREATE TABLE consent_changes (
            number       TEXT NOT NULL,         -- the customer, digits
            to_number    TEXT NOT NULL,         -- our number, digits
            change       TEXT NOT NULL,         -- "opted out" or "opted in"
            changed_by   TEXT NOT NULL,         -- the person
            changed_at   TEXT NOT NULL
        );
CREATE INDEX consent_changes_by_number ON consent_changes (number, to_number, changed_at);
CREATE INDEX messages_relayed ON messages (relayed_to, received_at) WHERE relayed_to IS NOT NULL;
INSERT INTO outbox (public_id, message_uuid, kind, status, src, dst, text, media_urls, attempts, next_attempt_at, claim_token, plivo_message_uuid, error, queued_at, send_at, sent_at, sent_by, sent_via) VALUES ('orders-message-0001', NULL, 'outbound', 'queued', '14155550100', '14155550123', 'Your order 1042 is ready.', NULL, 0, 1796115610.0, NULL, NULL, NULL, '2026-12-01T09:00:10.000000+00:00', NULL, NULL, 'orders', 'api');
INSERT INTO outbox (public_id, message_uuid, kind, status, src, dst, text, media_urls, attempts, next_attempt_at, claim_token, plivo_message_uuid, error, queued_at, send_at, sent_at, sent_by, sent_via) VALUES ('bookings-message-0001', NULL, 'outbound', 'scheduled', '14155550100', '14155550124', 'See you tomorrow at 9.', NULL, 0, 1798225062.2293026, NULL, NULL, NULL, '2026-12-01T09:00:11.000000+00:00', '2026-12-25T18:57:42.229303+00:00', NULL, 'bookings', 'api');
INSERT INTO outbox (public_id, message_uuid, kind, status, src, dst, text, media_urls, attempts, next_attempt_at, claim_token, plivo_message_uuid, error, queued_at, send_at, sent_at, sent_by, sent_via) VALUES ('cli-message-0001', NULL, 'outbound', 'queued', '14155550100', '14155550123', 'Your table is ready', NULL, 0, 1796115612.0, NULL, NULL, NULL, '2026-12-01T09:00:12.000000+00:00', NULL, NULL, 'cli', 'cli');
INSERT INTO api_tokens (name, digest, created_at, last_used_at) VALUES ('orders', 'be5b8f7e928b2e39a76e8e05cd82198dd87bfa358db901c551b5457f908e71f4', '2026-12-01T09:00:00.000000+00:00', NULL);
INSERT INTO api_tokens (name, digest, created_at, last_used_at) VALUES ('bookings', '0ec89a66fbc5ad8b8492a1a80a396d4d62743d2b75f0ea15820529acde071418', '2026-12-01T09:00:01.000000+00:00', NULL);
INSERT INTO users (name, password, created_at) VALUES ('alice', '$argon2id$v=19$m=8192,t=1,p=1$gTOUy55kTiC/YWFBJNWBBw$lzV0XQk5mk9WOUdOj+BtjqJJPKENy64wnbGHZayODYQ', '2026-12-01T09:00:00.000000+00:00');
INSERT INTO login_failures (name, failed_at) VALUES ('mallory', '2026-12-01T09:00:20.000000+00:00');
INSERT INTO login_failures (name, failed_at) VALUES ('mallory', '2026-12-01T09:00:21.000000+00:00');
INSERT INTO login_failures (name, failed_at) VALUES ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', '2026-12-01T09:00:22.000000+00:00');
COMMIT;
