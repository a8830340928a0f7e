DROP TABLE fix_messages;
DROP TABLE fix_sessions;
