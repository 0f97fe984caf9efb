CREATE TABLE IF NOT EXISTS `dinsync_state`.`pend_people_to_crm` (
  `_key` STRING NOT NULL,
  `_token` STRING,
  `_stashed_at` DATETIME,
  `_kh` INT64,
  `_fp` INT64,
  `_rkh` INT64,
  `f_a88b7dcd1a9e3e17` INT64,
  `f_b6ea992aab466831` INT64,
  `f_b205e07e594ce1db` INT64,
  `f_a720b844fa90091f` INT64
)
