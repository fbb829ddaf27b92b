"""gs:// against a private bucket: every request, read, list or write, carries Application Default
Credentials (a bare token, a service-account key, gcloud's user file, the metadata server), refreshed
when they expire; without credentials the bucket answers 401 and that is one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from servers import AuthGate, TokenServer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def tokens():
    server = TokenServer()
    yield server
    server.close()


@pytest.fixture
def private(gcs_server, tokens, monkeypatch):
    """A bucket `private` holding one object, reachable only with a token `tokens` issued
    (or 'ya29.given')."""
    gcs_server.upload("private", "ckpt/vocab.txt", b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    gate = AuthGate(gcs_server.endpoint, lambda: tokens.valid() | {"ya29.given"})
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gate.endpoint)
    yield gate
    gate.close()


def _service_account_key(path: Path, token_uri: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "test-project", "private_key_id": "k1",
        "private_key": pem, "client_email": "pusher@test-project.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": token_uri,
    }))
    return path


def _authorized(gate: AuthGate) -> list[str | None]:
    return [auth for _, auth in gate.seen]


def test_without_credentials_a_private_bucket_is_one_line(cli, private, tmp_path):
    result = cli("convert", "gs://private/ckpt", "--to", "hf")
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "HTTP 401" in result.stderr
    assert set(_authorized(private)) == {None}  # nothing was sent as credentials


def test_a_bare_token_goes_with_every_read_and_write(cli, private, demo_checkpoint, tmp_path):
    env = {"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.given"}
    pushed = cli("push", "bert-demo-tiny", "gs://private/bert/ckpt", **env)
    assert pushed.returncode == 0, pushed.stderr
    pulled = cli("prepare", str(Path(__file__).parents[2] / "bertvault/resources/sample_text.txt"),
                 "--vocab-from", "gs://private/bert/ckpt", "--seq-len", "32", "--out", str(tmp_path / "d"),
                 **env)
    assert pulled.returncode == 0, pulled.stderr
    assert _authorized(private) and set(_authorized(private)) == {"Bearer ya29.given"}


def test_a_service_account_key_is_used_and_refreshed(cli, private, tokens, demo_checkpoint, tmp_path):
    tokens.lifetime = 1  # every token is stale by the next request: google-auth refreshes it
    key = _service_account_key(tmp_path / "sa.json", tokens.token_uri)
    pushed = cli("push", "bert-demo-tiny", "gs://private/sa/ckpt", GOOGLE_APPLICATION_CREDENTIALS=str(key))
    assert pushed.returncode == 0, pushed.stderr
    assert [how for how, _ in tokens.issued].count("service-account") >= 2  # refreshed on the way
    assert all(auth in {f"Bearer {t}" for t in tokens.valid()} for auth in _authorized(private))


def test_gcloud_user_credentials_are_found(cli, private, tokens, tmp_path):
    """`gcloud auth application-default login`'s file is used. google-auth sends a user's refresh
    token only to Google's own endpoint, unreachable here: the one-line error names the file."""
    config = tmp_path / "gcloud"
    config.mkdir()
    (config / "application_default_credentials.json").write_text(json.dumps({
        "type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}))
    result = cli("convert", "gs://private/ckpt", "--to", "hf", CLOUDSDK_CONFIG=str(config))
    assert result.returncode == 3 and result.stderr.count("\n") == 1, result.stderr
    assert "application_default_credentials.json: cannot get an access token" in result.stderr
    assert set(_authorized(private)) == set()  # nothing went to the bucket without a token


def test_the_metadata_server_of_a_cloud_vm_is_asked(cli, private, tokens, tmp_path):
    where = f"127.0.0.1:{tokens.port}"
    result = cli("convert", "gs://private/ckpt", "--to", "hf", GCE_METADATA_HOST=where, GCE_METADATA_IP=where)
    assert "HTTP 401" not in result.stderr and "no checkpoint recognised" in result.stderr, result.stderr
    assert {how for how, _ in tokens.issued} == {"metadata"}


def test_broken_credentials_are_one_line(cli, private, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = cli("convert", "gs://private/ckpt", "--to", "hf", GOOGLE_APPLICATION_CREDENTIALS=str(bad))
    assert result.returncode == 3 and result.stderr.count("\n") == 1, result.stderr
    assert "gs:// credentials" in result.stderr and str(bad) in result.stderr


def test_credentials_never_leave_the_storage_host(monkeypatch):
    from bertvault.fetch import gcs_auth

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.secret")
    assert gcs_auth.headers("http://127.0.0.1:1/storage/v1/b/x/o/y") == {
        "authorization": "Bearer ya29.secret"}
    assert gcs_auth.headers("http://127.0.0.1:2/elsewhere") == {}
    assert gcs_auth.headers("https://cdn.example.org/object") == {}


def test_no_credentials_at_all_means_anonymous_without_waiting(monkeypatch):
    """Off Google Cloud with nothing configured, nothing is asked (no metadata-server timeout)."""
    import time

    from bertvault.fetch import gcs_auth

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    started = time.monotonic()
    assert gcs_auth.headers("http://127.0.0.1:1/storage/v1/b/x/o/y") == {}
    assert time.monotonic() - started < 0.5
    assert os.environ.get("GCE_METADATA_HOST") is None
