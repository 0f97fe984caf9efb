DROP TABLE IF EXISTS `dinsync_state`.`ack_people_to_crm`
