DROP TABLE IF EXISTS `dinsync_scratch`.`unsettle_people_to_crm`
