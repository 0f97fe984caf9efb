DROP TABLE IF EXISTS `dinsync_state`.`buckets_people_to_crm`
