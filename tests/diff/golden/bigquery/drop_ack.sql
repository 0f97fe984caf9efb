DROP TABLE IF EXISTS `dinsync_scratch`.`ack_people_to_crm`
