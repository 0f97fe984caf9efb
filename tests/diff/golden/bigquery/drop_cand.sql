DROP TABLE IF EXISTS `dinsync_scratch`.`cand_people_to_crm`
