DROP TABLE IF EXISTS {{ tables[target] }}
