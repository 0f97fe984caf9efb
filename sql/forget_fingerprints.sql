-- The mapping changed in a way the rows' fingerprints may not show (see the planner's
-- `forget_fingerprints`; here also before a destination field is mapped for the first time, whose
-- hash column is added next, NULL: "never delivered"). The fingerprints hash the mapped columns'
-- values, which a renamed destination field (or fields swapped between columns) leaves unchanged,
-- so the no-op check would skip every row: the snapshot's rows forget them, and the next plan
-- compares each row field by field and sends what differs. Parked rows forget their parking too:
-- they were rejected under the old mapping (a field's type, say) and are sent once more. Run
-- before the column is added, so a run stopped in between leaves the rows to compare.
-- keep_parked (a dry run, `dinsync plan`, adding the column of a field a branch maps): only the
-- fingerprints are forgotten, which costs the next sync a comparison of every row but changes
-- nothing it sends; the parked rows wait for the run that records the new mapping.
{% if keep_parked %}
UPDATE {{ snapshot }} SET _fp = NULL WHERE _fp IS NOT NULL
{% else %}
UPDATE {{ snapshot }} SET _fp = NULL, _pfp = NULL WHERE _fp IS NOT NULL OR _pfp IS NOT NULL
{% endif %}
