-- Stash, step 3 of 3, when one checkpoint stashes the records of several outcomes: each key takes
-- the token it was sent under (`tokens`: _key, _token, written by the planner; with one outcome the
-- planner sets the token as a bound value instead).
UPDATE {{ pending }} AS p
SET _token = t._token
FROM {{ tables.tokens }} AS t
WHERE p._key = t._key
  AND p._token IS NULL
