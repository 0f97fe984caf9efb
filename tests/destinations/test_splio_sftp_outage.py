"""Splio over SFTP against a server that accepts the connection and never answers (no SSH banner):
the pre-flight check's connection attempts stop once the server answered nothing for
DINSYNC_OUTAGE_SECONDS with 2 tried, as the HTTP sender's breaker does for a lone request."""
from __future__ import annotations

import asyncio
import tempfile

import pytest

from dinsync.destinations.splio.settings import SftpSettings
from dinsync.destinations.splio.sftp import SftpTransport
from tests.mute_server import MuteServer


def test_a_server_that_never_answers_the_login_is_given_up_after_two_attempts_of_silence(tmp_path, monkeypatch):
    """Each attempt waited `connect_timeout_seconds` for the banner, 3 of them (~92 s at the default
    30 s, where an outage is found in about a minute); 2 through the outage seconds now, the error
    naming the address and the timeout."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.2")
    with MuteServer() as mute:
        port = int(mute.url.rsplit(":", 1)[1])
        settings = SftpSettings(host="127.0.0.1", port=port, username="u", password="p",
                                known_hosts=str(tmp_path / "known_hosts"), connect_timeout_seconds=0.3)

        async def check() -> str:
            async with SftpTransport(settings, "sandbox", password="p") as transport:
                with pytest.raises(Exception) as err:
                    await asyncio.wait_for(transport.check_access(), 60)  # (a hang guard)
                return str(err.value)

        (tmp_path / "known_hosts").write_text("")
        message = asyncio.run(check())
        accepted = mute.accepted
    assert "failed after 2 attempt(s)" in message and f"127.0.0.1:{port}" in message, message
    assert accepted == 2, accepted


def test_an_upload_cut_after_the_server_answered_gets_all_its_attempts(tmp_path, monkeypatch):
    """An upload that writes block after block (the server answering throughout) and is then cut:
    the silence was counted from the first attempt's end whatever came after, so a second attempt
    that wrote for longer than DINSYNC_OUTAGE_SECONDS before its cut ended the upload after 2 of its
    `upload_attempts` (a large file over a flaky link: 30 s of writing). An attempt that connected
    or wrote a block starts the count again."""
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.2")
    settings = SftpSettings(host="127.0.0.1", port=22, username="u", password="p",
                            known_hosts=str(tmp_path / "known_hosts"), upload_attempts=4)
    transport = SftpTransport(settings, "sandbox", password="p")
    tries: list[int] = []

    async def connected():
        return object()

    async def upload(sftp):
        tries.append(1)
        for _ in range(6):  # a block answered every 0.05 s, for 0.3 s
            await asyncio.sleep(0.05)
            transport._progressed()
        raise ConnectionResetError("connection reset by peer")

    async def main():
        transport._client = connected
        with pytest.raises(ConnectionError) as err:
            await transport._with_client(upload, "uploading f.csv", attempts=4)
        return str(err.value)

    message = asyncio.run(main())
    assert len(tries) == 4, f"{len(tries)} of upload_attempts 4 tried: {message}"
    assert "failed after 4 attempt(s): ConnectionResetError" in message, message
