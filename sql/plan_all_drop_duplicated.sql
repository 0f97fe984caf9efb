-- ...and its rows are withheld.
DELETE FROM {{ plan }}
WHERE _op = 'added'
  AND _kh IN (SELECT d._kh FROM {{ plan }} AS d WHERE d._op = 'duplicate')
  AND _key IN (SELECT d._key FROM {{ plan }} AS d WHERE d._op = 'duplicate')
