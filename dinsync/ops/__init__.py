"""Operating syncs: the scheduler (`dinsync serve`), sync health checks, automatic pause and
resume, notifications on changes of state, and the status read from the state tables.

Modules: `scheduler` (when syncs are due, on an injectable clock), `serve` (the scheduler wired to
the warehouse and the engine), `health` (the cheap check of a sync's dependencies), `operate`
(pause guard, pause/resume, state transitions and notifications), `notify` (webhook and Slack
channels), `status` (what `dinsync status` shows). Nothing here prints: the CLI renders.
"""
