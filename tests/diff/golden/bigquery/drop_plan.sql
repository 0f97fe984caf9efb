DROP TABLE IF EXISTS `dinsync_scratch`.`plan_people_to_crm`
