DROP TABLE IF EXISTS `dinsync_state`.`plan_people_to_crm`
