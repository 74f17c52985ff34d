-- Nothing reads events by recording time or by command id yet (`applied_commands` answers
-- which aggregate a command appended to), and every append paid for both indexes: a wallet
-- purchase appends nine events at once. The audit reads that will need them (state as of a
-- time) can build them again, without blocking appends, with CREATE INDEX CONCURRENTLY.
DROP INDEX IF EXISTS events_recorded_at;
DROP INDEX IF EXISTS events_command_id;
