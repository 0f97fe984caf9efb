DROP TABLE IF EXISTS `dinsync_scratch`.`prior_people_to_crm`
