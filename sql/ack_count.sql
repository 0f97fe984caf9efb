SELECT COUNT(*) AS acknowledged FROM {{ acked }}
