DROP TABLE IF EXISTS `dinsync_state`.`prior_people_to_crm`
