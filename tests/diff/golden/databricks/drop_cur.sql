DROP TABLE IF EXISTS `dinsync_state`.`cur_people_to_crm`
