-- Stash, step 1 of 2: a key sent again replaces what an earlier send left pending. Records without
-- a token are dropped too: a stash sets its records' token as its last step, so they are what a
-- stash interrupted before it left (where its statements commit on their own: Snowflake), and the
-- token this stash sets must not reach them (not in the snapshot, they are sent again).
DELETE FROM {{ pending }}
WHERE _key IN (SELECT k._key FROM {{ acked }} AS k)
   OR _token IS NULL
