"""dinsync in Dagster: check the models' keys, then sync, after your dbt job.

    pip install dagster dinsync
    DINSYNC_PROJECT_DIR=path/to/project dagster job execute -f examples/dagster_job.py -j activation
    # or in Python: activation.execute_in_process()

Each op loads the project again (so it reads the manifest of the latest `dbt build`), runs
through the Python API and fails the step the way the CLI would exit: a blocked model, a failed
run or a held lock fail it; warnings are logged and let through (`allow_warnings=True`). A failure
a retry can help (a failed run, exit code 1; a lock held by another run, 5) is retried twice, 5
minutes apart (RETRIES); a configuration error (3) or a sync paused by hand (6) fails at once. The run
objects are attached to the step's output as metadata. Put the dbt build first in the same job
(e.g. dagster-dbt's `@dbt_assets`, with this job selecting downstream of them) or schedule this
job after it.
"""
import contextlib
import os

import dagster as dg

import dinsync

PROJECT_DIR = os.environ.get("DINSYNC_PROJECT_DIR", "dinsync_project")

RETRIES = dg.RetryPolicy(max_retries=2, delay=300)
NOT_RETRIED = {3, 6}  # dinsync's exit codes of a configuration error and of a sync paused by hand


@contextlib.contextmanager
def failing_without_retries_when_permanent():
    """A dinsync error whose exit code says a retry cannot help fails the step at once."""
    try:
        yield
    except dinsync.DinsyncError as exc:
        if exc.exit_code in NOT_RETRIED:
            raise dg.Failure(f"{exc} (exit code {exc.exit_code}: not retried)", allow_retries=False) from exc
        raise


class Selection(dg.Config):
    select: list[str] = []  # e.g. ["tag:daily"]; empty: every enabled sync
    exclude: list[str] = []


@dg.op(retry_policy=RETRIES)
def check_keys(context: dg.OpExecutionContext, config: Selection) -> int:
    """`dinsync check`: NULL and duplicated keys of the models the syncs read."""
    with failing_without_retries_when_permanent():
        result = dinsync.load_project(PROJECT_DIR).check(select=config.select, exclude=config.exclude)
        for model in result.models:
            context.log.info(f"model {model.model}: {model.status}, {model.rows} rows")
            for message in model.messages:
                context.log.warning(message)
        result.raise_for_status(allow_warnings=True)  # a blocked model fails the job here
    return result.exit_code


@dg.op(retry_policy=RETRIES)
def sync(context: dg.OpExecutionContext, config: Selection, checked: int) -> dg.Output[list]:
    """`dinsync sync`: bring each destination up to date with its model."""
    with failing_without_retries_when_permanent():
        result = dinsync.load_project(PROJECT_DIR).sync(
            select=config.select, exclude=config.exclude,
            on_run=lambda run: context.log.info(f"{run.sync}: {run.status}, {run.acknowledged} acknowledged, "
                                                f"{run.rejected} rejected"))
        runs = [run.as_dict() for run in result.runs]
        result.raise_for_status(allow_warnings=True)
    return dg.Output(runs, metadata={"exit_code": result.exit_code,
                                     "acknowledged": sum(r["acknowledged"] for r in runs),
                                     "runs": dg.MetadataValue.json(runs)})


@dg.job
def activation() -> None:
    sync(check_keys())


if __name__ == "__main__":
    outcome = activation.execute_in_process(run_config={"ops": {
        "check_keys": {"config": {"select": []}}, "sync": {"config": {"select": []}}}})
    raise SystemExit(0 if outcome.success else 1)
