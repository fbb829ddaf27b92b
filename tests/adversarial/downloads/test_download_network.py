"""Network failures that no retry can fix fail their mirror at once, in one short line: malformed or
non-HTTP redirects, an HTTPS to HTTP downgrade, unknown host names, refused connections (after a
few quick tries), for https:// and hf:// alike. Retries stay for what may pass (5xx, resets,
timeouts: tests/fetch/test_pull_faults.py)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time

import pytest
from fetch_helpers import bertvault_process, random_bytes, sha256
from servers import FaultServer

FAST = ["--chunk-size", "64K", "--progress", "none"]
DATA = random_bytes(200_000, seed=31)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


BAD_LOCATIONS = {
    "unclosed-ipv6": "http://[::1",
    "unclosed-ipv6-path": "http://[::1/f.bin",
    "port-out-of-range": "http://127.0.0.1:99999/f.bin",
    "no-host": "http:///f.bin",
    "ftp": "ftp://127.0.0.1/f.bin",
    "file": "file:///etc/passwd",
    "javascript": "javascript:alert(1)",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("location", BAD_LOCATIONS.values(), ids=BAD_LOCATIONS.keys())
def test_a_bad_redirect_fails_its_mirror_at_once_and_the_next_one_is_used(cli, faulty, manifest, home,
                                                                            location) -> None:
    bad = faulty.add("bad/f.bin", DATA, redirect=location)
    good = faulty.add("good/f.bin", DATA)
    manifest.add("redirected", {"path": "f.bin", "urls": [bad, good]})
    started = time.monotonic()
    result = cli("pull", "redirected", *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["files"][0]["url"] == good
    assert (home / "artifacts" / "redirected" / "f.bin").read_bytes() == DATA
    assert "redirect" in result.stderr and "trying the next mirror" in result.stderr
    assert len([s for s in faulty.seen if s.path == "/bad/f.bin"]) == 1  # not retried
    assert time.monotonic() - started < 5


@pytest.mark.timeout(30)
def test_a_bad_redirect_on_the_only_mirror_is_one_line_and_exit_3(cli, faulty, manifest) -> None:
    url = faulty.add("f.bin", DATA, redirect="ftp://127.0.0.1/f.bin")
    manifest.add("ftp", {"path": "f.bin", "urls": [url]})
    result = cli("pull", "ftp", *FAST)
    assert result.exit_code == 3
    last = one_line_error(result.stderr)
    assert last.startswith(f"error: ftp/f.bin: {url}: ") and "ftp://127.0.0.1/f.bin" in last
    assert "not an HTTP" in last and len(last) < 300


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {done.stderr.strip()[-200:]}")
    return cert, key


@pytest.mark.timeout(30)
def test_an_https_mirror_that_redirects_to_plain_http_is_refused(cli, faulty, manifest, home, certificate,
                                                                 monkeypatch) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    secure = FaultServer(tls=context)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
        plain = faulty.add("f.bin", DATA)
        downgrading = secure.add("f.bin", DATA, redirect=plain)
        good = secure.add("good/f.bin", DATA)
        manifest.add("downgrade", {"path": "f.bin", "urls": [downgrading, good]})
        result = cli("pull", "downgrade", *FAST, "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["files"][0]["url"] == good
        assert "from HTTPS to plain HTTP" in result.stderr
        assert faulty.seen == []  # the plain-HTTP server was never asked
    finally:
        secure.close()


@pytest.mark.timeout(30)
def test_an_unknown_host_fails_at_once(cli, manifest) -> None:
    manifest.add("nohost", {"path": "f.bin", "urls": ["http://files.bertvault-test.invalid/f.bin"]})
    started = time.monotonic()
    result = cli("pull", "nohost", *FAST)
    assert result.exit_code == 3
    last = one_line_error(result.stderr)
    assert "cannot resolve the host name (files.bertvault-test.invalid)" in last and len(last) < 300
    assert time.monotonic() - started < 3


@pytest.mark.timeout(30)
def test_a_refused_connection_fails_after_a_few_quick_tries(cli, manifest) -> None:
    url = f"http://127.0.0.1:{closed_port()}/f.bin"
    manifest.add("refused", {"path": "f.bin", "urls": [url]})
    started = time.monotonic()
    result = cli("pull", "refused", *FAST)
    elapsed = time.monotonic() - started
    assert result.exit_code == 3
    last = one_line_error(result.stderr)
    assert "connection refused" in last and "3 attempts" in last and len(last) < 300
    assert elapsed < 5  # the default budget (7 tries, about 60 s of backoff) is for errors that may pass


@pytest.mark.timeout(30)
@pytest.mark.parametrize("endpoint, said", [
    ("http://hub.bertvault-test.invalid", "cannot resolve the host name (hub.bertvault-test.invalid)"),
    (f"http://127.0.0.1:{closed_port()}", "connection refused"),
], ids=["unknown-host", "refused"])
def test_hf_hub_unreachable_fails_fast_in_one_short_line(manifest, endpoint, said) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: a process of its own, as a user runs it
    files = [{"path": f"f{i}.bin", "urls": [f"hf://org/repo/f{i}.bin"]} for i in range(3)]
    manifest.add("hubdown", *files)
    started = time.monotonic()
    env = {"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}
    process = bertvault_process("pull", "hubdown", *FAST, env=env)
    _, err = process.communicate(timeout=25)
    assert process.returncode == 3
    last = one_line_error(err)
    assert last.count(said) == 3 and len(last) < 3 * 250
    assert time.monotonic() - started < 8  # was 65 s, with a 1,600-character message


@pytest.mark.timeout(60)
def test_hf_files_still_come_through_the_hub_and_its_cdn(hub, manifest, home) -> None:
    url = hub.add_repo_file("org/repo", "model.bin", DATA)
    manifest.add("hubok", {"path": "model.bin", "urls": [url]})
    process = bertvault_process("pull", "hubok", *FAST, "--json",
                                env={"HF_ENDPOINT": f"http://127.0.0.1:{hub.port}", "HF_HUB_OFFLINE": "0"})
    out, err = process.communicate(timeout=50)
    assert process.returncode == 0, err
    assert json.loads(out)["files"][0]["sha256"] == sha256(DATA)
