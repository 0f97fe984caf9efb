-- A first plan that is not written (plan_first.sql) where some key hashes occur on several rows:
-- one 'duplicate' row per key found on more than one row (its rows are withheld).
INSERT INTO {{ plan }} (_key, _op, _n, _kh)
SELECT d._key, 'duplicate', COUNT(*), MIN(d._kh)
FROM (
  SELECT k._key, DINSYNC_HASH(k._key) AS _kh
  FROM (SELECT {{ key_expr }} AS _key FROM {{ model }} AS m) AS k
  WHERE k._key IS NOT NULL
) AS d
WHERE d._kh IN (SELECT c._kh FROM {{ plan }} AS c WHERE c._op = 'collision')
GROUP BY d._key
HAVING COUNT(*) > 1
