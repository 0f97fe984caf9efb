DROP TABLE IF EXISTS `dinsync_scratch`.`tokens_people_to_crm`
