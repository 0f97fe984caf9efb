DROP TABLE IF EXISTS `dinsync_scratch`.`acked_people_to_crm`
