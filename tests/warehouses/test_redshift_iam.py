"""Redshift with IAM: temporary database credentials from AWS, through the real boto3 client
(its responses stubbed offline with botocore's Stubber), then a real session (the local
PostgreSQL stands in for the cluster; trust auth ignores the temporary password)."""
from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber

from dinsync.config.models import RedshiftConfig
from dinsync.warehouses import WarehouseAuthError, connect
from tests.warehouses.support import PG_DSN, require_postgres


def current_role() -> str:
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        return conn.execute("SELECT current_user").fetchone()[0]


def stubbed(service: str, method: str, responses: list[tuple[dict, dict]]):
    client = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x",
                                   region_name="eu-west-1").client(service)
    stub = Stubber(client)
    for params, response in responses:
        stub.add_response(method, response, params)
    stub.activate()
    return client, stub


def test_cluster_credentials_are_fetched_and_refreshed_before_they_expire(monkeypatch):
    require_postgres()
    role = current_role()
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)  # inside the refresh margin
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=15)
    expected = {"DbUser": role, "DbName": "test", "ClusterIdentifier": "my-cluster", "DurationSeconds": 900,
                "AutoCreate": False}
    client, stub = stubbed("redshift", "get_cluster_credentials", [
        (expected, {"DbUser": role, "DbPassword": "tmp-secret-1", "Expiration": soon}),
        (expected, {"DbUser": role, "DbPassword": "tmp-secret-2", "Expiration": later}),
    ])
    options = dict(dsn=PG_DSN, user=role,
                   database="test", iam={"cluster_identifier": "my-cluster", "region": "eu-west-1"})
    # sslmode=require is what IAM sessions ask for; the local server has no TLS: allow it here only
    from dinsync.warehouses import redshift

    original = redshift.IamCredentials.login

    def login(self):
        out = original(self)
        assert out["sslmode"] == "require" and out["password"].startswith("tmp-secret-")
        return {**out, "sslmode": "disable"}

    monkeypatch.setattr(redshift.IamCredentials, "login", login)
    wh = connect("redshift", **options, aws_client=lambda service: client)
    try:
        assert wh.scalar("SELECT current_user") == role
        assert wh._iam._cached[1] == "tmp-secret-1"
        wh._iam.login()  # expires within the margin: fetched again
        assert wh._iam._cached[1] == "tmp-secret-2"
        assert {"tmp-secret-1", "tmp-secret-2"} <= set(wh._secrets)  # scrubbed from any error text
    finally:
        wh.close()
    stub.assert_no_pending_responses()


def test_serverless_credentials():
    role = "IAMR:dinsync"
    client, stub = stubbed("redshift-serverless", "get_credentials", [
        ({"workgroupName": "my-wg", "dbName": "analytics", "durationSeconds": 900},
         {"dbUser": role, "dbPassword": "tmp-pass", "expiration": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)}),
    ])
    from dinsync.warehouses.redshift import IamCredentials

    creds = IamCredentials({"workgroup": "my-wg"}, None, "analytics", [], aws_client=lambda service: client)
    assert creds.login() == {"user": role, "password": "tmp-pass", "sslmode": "require"}
    assert creds.login()["password"] == "tmp-pass"  # cached
    stub.assert_no_pending_responses()


def test_refused_credentials_say_what_to_check():
    require_postgres()
    client, stub = stubbed("redshift", "get_cluster_credentials", [])
    stub.add_client_error("get_cluster_credentials", service_error_code="AccessDenied",
                          service_message="not authorized to perform redshift:GetClusterCredentials", http_status_code=403)
    with pytest.raises(WarehouseAuthError) as info:
        connect("redshift", dsn=PG_DSN, user="dinsync", database="test", iam={"cluster_identifier": "c"},
                aws_client=lambda service: client)
    assert "GetClusterCredentials" in info.value.message and "AWS credentials" in info.value.hint


def test_iam_without_boto3_names_the_extra(monkeypatch):
    """Without boto3 (`pip install 'dinsync[postgres]'`, then an IAM config) the missing driver was
    caught as a refused AWS login: "could not get IAM database credentials: WarehouseDriverMissing",
    hint "check the AWS credentials", exit 1; a missing driver names its extra (exit 3)."""
    import sys

    from dinsync.errors import ExitCode
    from dinsync.warehouses import WarehouseDriverMissing

    require_postgres()
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    with pytest.raises(WarehouseDriverMissing) as info:
        connect("redshift", dsn=PG_DSN, user="dinsync", database="test", iam={"cluster_identifier": "c"})
    assert info.value.hint == "pip install 'dinsync[redshift]'" and info.value.exit_code == ExitCode.CONFIG_ERROR


def test_iam_config():
    cfg = RedshiftConfig(type="redshift", host="h", user="u", database="d",
                         iam={"cluster_identifier": "c", "region": "eu-west-1"})
    assert cfg.model_dump(exclude={"type"})["iam"]["cluster_identifier"] == "c"
    for bad in ({"iam": {"region": "r"}}, {"iam": {"cluster_identifier": "c", "workgroup": "w"}},
                {"iam": {"cluster_identifier": "c"}, "password": "p"}, {"iam": {"cluster_identifier": "c"}, "user": None}):
        with pytest.raises(ValueError):
            RedshiftConfig(**{"type": "redshift", "host": "h", "user": "u", "database": "d", **bad})


def test_credentials_are_fetched_again_by_their_duration_when_aws_clock_is_ahead_of_ours(monkeypatch):
    """AWS's clock 10 minutes ahead of this host's: credentials of 900 s said `expiration` 25 minutes
    ahead of our clock, and were kept (new sessions logging in with them) 10 minutes after they had
    expired; as long again after the wall clock stepped back. They are good for the duration asked
    for at most, in elapsed time."""
    import types

    from dinsync.warehouses import redshift

    aws = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
    ask = {"workgroupName": "my-wg", "dbName": "analytics", "durationSeconds": 900}
    client, stub = stubbed("redshift-serverless", "get_credentials", [
        (ask, {"dbUser": "IAMR:d", "dbPassword": "tmp-1", "expiration": aws + dt.timedelta(seconds=900)}),
        (ask, {"dbUser": "IAMR:d", "dbPassword": "tmp-2", "expiration": aws + dt.timedelta(seconds=1900)}),
    ])
    ours, elapsed = [aws - dt.timedelta(minutes=10)], [1000.0]  # this host's wall clock and time.monotonic()

    class Wall(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return ours[0].astimezone(tz)

    monkeypatch.setattr(redshift, "dt", types.SimpleNamespace(**{**vars(dt), "datetime": Wall}))
    monkeypatch.setattr(redshift, "time", types.SimpleNamespace(monotonic=lambda: elapsed[0]), raising=False)
    creds = redshift.IamCredentials({"workgroup": "my-wg"}, None, "analytics", [], aws_client=lambda service: client)
    assert creds.login()["password"] == "tmp-1"
    ours[0] += dt.timedelta(minutes=14)  # 14 minutes in: 900 s less the 60 s margin have passed
    elapsed[0] += 14 * 60
    assert creds.login()["password"] == "tmp-2"
    stub.assert_no_pending_responses()
