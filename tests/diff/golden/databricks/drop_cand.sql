DROP TABLE IF EXISTS `dinsync_state`.`cand_people_to_crm`
