-- A FIX session as its engine left it, so that a restart, or another engine taking the session
-- over, resumes it where it stopped: the next sequence number each way, whether the next logon must
-- reset them, how far inbound application messages were taken, and each message sent, for the
-- counterparty's resend requests.
CREATE TABLE fix_sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    next_sender_seq BIGINT NOT NULL,
    next_target_seq BIGINT NOT NULL,
    reset_owed BOOLEAN NOT NULL DEFAULT FALSE,
    app_watermark BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE fix_messages (
    session_id TEXT NOT NULL,
    seq_num BIGINT NOT NULL,
    msg_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (session_id, seq_num)
);
