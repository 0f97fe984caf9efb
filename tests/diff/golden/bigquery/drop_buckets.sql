DROP TABLE IF EXISTS `dinsync_scratch`.`buckets_people_to_crm`
