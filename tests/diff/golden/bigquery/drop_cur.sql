DROP TABLE IF EXISTS `dinsync_scratch`.`cur_people_to_crm`
