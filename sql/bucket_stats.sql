-- Model rows, model rows without a key, and buckets that differ from the snapshot.
SELECT
  COALESCE(SUM(b._seg_n), 0) AS segment_rows,
  COALESCE(SUM(CASE WHEN b._b = {{ nbuckets }} THEN b._seg_n END), 0) AS null_keys,
  COUNT(CASE WHEN b._dirty THEN 1 END) AS dirty,
  COUNT(CASE WHEN b._b < {{ nbuckets }} THEN 1 END) AS buckets
FROM {{ buckets }} AS b
