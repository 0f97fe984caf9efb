"""Line progress for logs (dinsync.progress.LineProgress), on a fake clock."""
from __future__ import annotations

from dinsync.progress import LineProgress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_one_line_per_phase_and_checkpoints_at_most_every_interval():
    lines, clock = [], Clock()
    p = LineProgress("users", lines.append, interval=5.0, clock=clock)
    p("plan", {"sync": "users"})
    p("note", {"message": "3 rows with a NULL matching key were skipped"})
    p("send", {"total": 3000})
    for second in range(12):
        clock.now = 100.0 + second
        p("sent", {"rows": 250})
        p("checkpoint", {"acknowledged": 250})
    p("finish", {})
    assert lines == [
        "users: planning [0.0s]",
        "users: note: 3 rows with a NULL matching key were skipped",
        "users: sending 3,000 rows [0.0s]",
        "users: sent 250/3,000 rows, 250 acknowledged [0.0s]",
        "users: sent 1,500/3,000 rows, 1,500 acknowledged [5.0s]",
        "users: sent 2,750/3,000 rows, 2,750 acknowledged [10.0s]",
        "users: sent 3,000/3,000 rows, committing [11.0s]",
    ]


def test_notes_only_for_json_output():
    lines = []
    p = LineProgress("users", lines.append, notes_only=True)
    for event, data in (("plan", {}), ("send", {"total": 1}), ("sent", {"rows": 1}), ("checkpoint", {"acknowledged": 1}),
                        ("note", {"message": "hello"}), ("finish", {})):
        p(event, data)
    assert lines == ["users: note: hello"]
