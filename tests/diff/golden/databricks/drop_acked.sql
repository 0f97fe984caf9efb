DROP TABLE IF EXISTS `dinsync_state`.`acked_people_to_crm`
