-- Candidates found unchanged although their fingerprint or raw key text was not: the snapshot
-- takes the new fingerprint ('refresh': values equal to the delivered ones, so parking ends too)
-- or the new raw key hash ('rekey'), so that the next plan skips them again. Hashes of delivered
-- values are never touched here.
UPDATE {{ snapshot }} AS s
SET
  _fp = CASE WHEN p._op = 'refresh' THEN p._fp ELSE s._fp END,
  _pfp = CASE WHEN p._op = 'refresh' THEN NULL ELSE s._pfp END,
  _rkh = p._rkh
FROM {{ plan }} AS p
WHERE p._op IN ('refresh', 'rekey')
  AND s._kh = p._kh
  AND s._key = p._key
