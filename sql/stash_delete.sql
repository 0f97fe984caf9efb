-- Stash, step 1 of 2: a key sent again replaces what an earlier send left pending.
DELETE FROM {{ pending }}
WHERE _key IN (SELECT k._key FROM {{ acked }} AS k)
