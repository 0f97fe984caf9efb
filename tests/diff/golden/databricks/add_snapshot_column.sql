ALTER TABLE `dinsync_state`.`snap_people_to_crm`
ADD COLUMN `f_a88b7dcd1a9e3e17` BIGINT
