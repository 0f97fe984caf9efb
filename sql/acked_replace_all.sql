-- Some of these keys were committed by this run already: every snapshot row may need replacing.
UPDATE {{ acked }} SET _replace = TRUE
