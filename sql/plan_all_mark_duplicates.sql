-- First plan / full refresh, when some key occurs more than once: one 'duplicate' row per such
-- key (_n = its rows)...
INSERT INTO {{ plan }} (_key, _op, _n, _kh)
SELECT p._key, 'duplicate', COUNT(*), MIN(p._kh)
FROM {{ plan }} AS p
WHERE p._op = 'added'
  AND p._kh IN (
    SELECT d._kh FROM {{ plan }} AS d WHERE d._op = 'added' GROUP BY d._kh HAVING COUNT(*) > 1
  )
GROUP BY p._key
HAVING COUNT(*) > 1
