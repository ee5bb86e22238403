"""`gridflow codec keygen` and `codec-server`: a key entry the keyring takes; no server without keys."""

from __future__ import annotations

import pytest

from gridflow.app.cli import main
from gridflow.app.codec import Keyring


def test_keygen_prints_an_entry_the_keyring_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["codec", "keygen", "--id", "k2026a"]) == 0
    entry = capsys.readouterr().out.strip()
    assert entry.startswith("k2026a:")
    assert Keyring.parse(entry).current_id == "k2026a"


def test_the_codec_server_will_not_start_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRIDFLOW_CODEC_KEYS", raising=False)
    assert main(["codec-server", "--port", "0"]) == 1
    assert capsys.readouterr().err == (
        "GRIDFLOW_CODEC_KEYS is not set: the codec server needs the keys "
        "(make one with `gridflow codec keygen --id k1`)\n"
    )
