-- How many rows the model holds (a first plan that is not written counts them apart: plan_first.sql).
SELECT COUNT(*) AS model_rows
FROM {{ model }} AS m
