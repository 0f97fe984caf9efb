DROP TABLE IF EXISTS {{ candidates }}
