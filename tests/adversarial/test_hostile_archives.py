"""Hostile and damaged archives: nothing is written or read outside the folder, clashes and damage are
one-line errors naming the member, and nothing hangs. Each case runs as zip and as tar.gz where the
format can express it; the generated cases (hypothesis) cover the link chains no list foresees."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import hostile_builders as damage
import pytest
from hostile_builders import D, E, F, H, S, build, make_tar, make_zip, sha256
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertvault.errors import DownloadError, UnsafeInput
from bertvault.fetch import assemble
from bertvault.fetch.archives import extract

pytestmark = pytest.mark.timeout(60)

SECRET = b"the secret outside the folder"
KINDS = ["zip", "tar.gz"]


class Sandbox:
    """A folder to extract into, three levels below files that must stay untouched and unread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "secret").write_bytes(SECRET)
        (root / "a" / "b").mkdir(parents=True)
        (root / "a" / "secret").write_bytes(SECRET)
        self.dest = root / "a" / "b" / "dest"
        self.dest.mkdir()
        self.archives = root / "archives"
        self.archives.mkdir()
        self.before = self.outside()

    def outside(self) -> dict[str, bytes | None]:
        """Every entry outside the folder (and outside the archives), with its bytes."""
        found = {}
        for path in self.root.rglob("*"):
            if self.dest in path.parents or path == self.dest or self.archives in path.parents:
                continue
            found[str(path.relative_to(self.root))] = path.read_bytes() if path.is_file() else None
        return found

    def extract(self, kind: str, entries: list[E], **kw) -> dict:
        archive = build(kind, self.archives, entries)
        return extract(archive, kind, self.dest, kw.pop("root", None), kw.pop("cap", 1 << 20), **kw)

    def assert_contained(self) -> None:
        """Nothing outside changed; no link inside leads out; no file inside holds the secret."""
        assert self.outside() == self.before
        home = os.path.realpath(self.dest)
        for folder, dirs, files in os.walk(self.dest):
            for name in dirs + files:
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    assert os.path.commonpath([home, os.path.realpath(path)]) == home, path
                elif os.path.isfile(path):
                    assert SECRET not in Path(path).read_bytes(), path


@pytest.fixture
def box(tmp_path) -> Sandbox:
    return Sandbox(tmp_path)


def refused(box: Sandbox, kind: str, entries: list[E], pattern: str, error=UnsafeInput) -> str:
    with pytest.raises(error, match=pattern) as info:
        box.extract(kind, entries)
    box.assert_contained()
    message = str(info.value)
    assert "\n" not in message
    return message


# The chain of the issue: each link looks inside on paper, together they climb out.
CHAIN = [S("x", "."), S("e1", "x/.."), S("e2", "e1/.."), S("e3", "e2/..")]

ESCAPES = {
    "write through the chain": (CHAIN + [F("e3/pwned", b"owned")], "passes through a link at 'e3'"),
    "overwrite through the chain": (CHAIN + [F("e3/secret", b"owned")], "passes through a link at 'e3'"),
    "folder through the chain": (CHAIN + [D("e3/newdir")], "passes through a link at 'e3'"),
    "link through the chain": (CHAIN + [S("e3/l", "secret")], "passes through a link at 'e3'"),
    "read through a link to the chain": (CHAIN + [S("leak", "e3/secret")], "links outside the folder"),
    "the chain alone": (CHAIN, "links outside the folder"),
    "link to a climbing link": ([S("up", "x/../.."), S("x", ".")], "links outside the folder"),
    "dangling link made to climb later": ([S("l1", "x/.."), S("x", ".")], "links outside the folder"),
    "absolute link": ([S("l", "/etc/passwd")], "links outside the folder"),
    "climbing link": ([F("a.txt"), S("d/l", "../../secret")], "links outside the folder"),
    "file in a link to a folder": ([D("sub"), S("l", "sub"), F("l/f")], "passes through a link at 'l'"),
    "member climbing with ..": ([F("ok/../../evil")], "climbs out of the folder with '..'"),
    "absolute member": ([F("/tmp/evil")], "has an absolute path"),
    "drive letter": ([F("C:/evil")], "has an absolute path"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_links_and_names_cannot_escape(box, kind, case) -> None:
    entries, pattern = ESCAPES[case]
    message = refused(box, kind, entries, pattern)
    assert "archive member" in message and str(box.archives / f"archive.{kind}") not in message


HARDLINKS = {
    "through the chain": (CHAIN + [H("leak", "e3/secret")], "not a file extracted before it"),
    "to a link to outside": ([S("x", "."), H("leak", "x")], "not a file extracted before it"),
    "to a folder": ([D("d"), H("leak", "d")], "not a file extracted before it"),
    "to a later member": ([H("leak", "f"), F("f")], "not a file extracted before it"),
    "climbing": ([H("leak", "../secret")], "climbs out of the folder"),
    "absolute": ([H("leak", "/etc/passwd")], "has an absolute path"),
}


@pytest.mark.parametrize("case", sorted(HARDLINKS))
def test_hardlinks_copy_only_earlier_files(box, case) -> None:
    entries, pattern = HARDLINKS[case]
    refused(box, "tar.gz", entries, pattern)


def test_hardlink_is_a_copy_of_an_earlier_file(box) -> None:
    files = box.extract("tar.gz", [F("d/a.bin", b"A" * 100), H("d/b.bin", "d/a.bin")])
    assert files["d/b.bin"] == files["d/a.bin"] == {"size": 100, "sha256": sha256(b"A" * 100)}
    a, b = (box.dest / "d" / "a.bin").stat(), (box.dest / "d" / "b.bin").stat()
    assert a.st_ino != b.st_ino and b.st_nlink == 1


def test_hardlink_copies_count_against_the_cap(box) -> None:
    entries = [F("big", b"z" * 300_000)] + [H(f"copy{i}", "big") for i in range(5)]
    with pytest.raises(UnsafeInput, match="expands past 1048576 bytes .*zip bomb"):
        box.extract("tar.gz", entries)


CLASHES = {
    "file then folder": ([F("a"), F("a/b")], "passes through a file at 'a'"),
    "file then folder entry": ([F("a"), D("a")], "clashes with a file at 'a'"),
    "folder then file": ([D("a"), F("a")], "clashes with a folder at 'a'"),
    "file twice": ([F("a", b"1"), F("a", b"2")], "clashes with a file at 'a'"),
    "file then link": ([F("a"), S("a", "b")], "clashes with a file at 'a'"),
    "link then file": ([F("b"), S("a", "b"), F("a")], "clashes with a link at 'a'"),
    "link then folder": ([D("b"), S("a", "b"), D("a")], "clashes with a link at 'a'"),
    "folder then link": ([D("a"), S("a", ".")], "clashes with a folder at 'a'"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile's, when writing the same name twice
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(CLASHES))
def test_two_entries_at_one_path_are_refused(box, kind, case) -> None:
    entries, pattern = CLASHES[case]
    message = refused(box, kind, entries, pattern)
    assert "archive member 'a" in message


LINKS_REFUSED = {
    "loop": ([S("a", "b"), S("b", "a")], "loop of links"),
    "self loop": ([S("a", "a")], "loop of links"),
    "dangling": ([S("a", "missing")], "not in the archive"),
    "through a file": ([F("f"), S("a", "f/x")], "passes through a file"),
    "empty target": ([S("a", "")], "empty, NUL-holding or overlong target"),
    "overlong target": ([S("a", "b/" * 600)], "empty, NUL-holding or overlong target"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(LINKS_REFUSED))
def test_links_that_resolve_nowhere_are_refused(box, kind, case) -> None:
    entries, pattern = LINKS_REFUSED[case]
    refused(box, kind, entries, pattern)
    assert not any(p.is_symlink() for p in box.dest.rglob("*"))  # a failed extraction leaves no link


@pytest.mark.parametrize("kind", KINDS)
def test_links_inside_are_kept(box, kind) -> None:
    box.extract(kind, [F("d/a.txt", b"A"), S("d/b.txt", "a.txt"), D("e"), S("e/up", "../d"), S("here", ".")])
    assert os.readlink(box.dest / "d" / "b.txt") == "a.txt"
    assert (box.dest / "e" / "up" / "b.txt").read_bytes() == b"A"
    box.assert_contained()


NAMES = {
    "NUL": ("a\0b", "NUL or another control character"),
    "newline": ("a\nb", "NUL or another control character"),
    "segment of 300": ("d/" + "n" * 300, "segment longer than 255 bytes"),
    "path of 1100": ("/".join(["d" * 100] * 11), "is 1110 bytes long"),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_hostile_names_are_refused_in_tar(box, case) -> None:
    name, pattern = NAMES[case]  # pax headers carry any name, NUL and 300-byte segments included
    refused(box, "tar.gz", [F(name)], pattern)


@pytest.mark.parametrize("case", ["newline", "segment of 300", "path of 1100"])
def test_hostile_names_are_refused_in_zip(box, case) -> None:
    name, pattern = NAMES[case]  # zip cuts a name at NUL itself
    refused(box, "zip", [F(name)], pattern)


def test_link_target_with_nul_is_refused(box) -> None:
    refused(box, "tar.gz", [F("a"), S("l", "a\0b")], "NUL-holding")


def test_special_files_are_refused(box) -> None:
    import tarfile

    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
        archive = box.archives / "special.tar.gz"
        info = tarfile.TarInfo("dev")
        info.type = kind
        with tarfile.open(archive, "w:gz") as tar:
            tar.addfile(info)
        with pytest.raises(UnsafeInput, match="'dev' is a device file, fifo or socket"):
            extract(archive, "tar.gz", box.dest, None, 1 << 20)


def test_many_small_entries_are_capped(box) -> None:
    with pytest.raises(UnsafeInput, match="more than 50 members"):
        box.extract("tar.gz", [F(f"f{i}") for i in range(60)], max_entries=50)
    with pytest.raises(UnsafeInput, match="lists 60 members, more than 50"):
        box.extract("zip", [F(f"f{i}") for i in range(60)], max_entries=50)
    deep = "/".join(["d"] * 60) + "/leaf"  # one member, sixty folders
    with pytest.raises(UnsafeInput, match="more than 50 files, folders and links"):
        box.extract("tar.gz", [F(deep)], max_entries=50)


def test_a_zip_bomb_stops_at_the_cap(box) -> None:
    archive = make_zip(box.archives / "bomb.zip", [F("zeros.bin", bytes(20 << 20))])
    assert archive.stat().st_size < 100_000
    with pytest.raises(UnsafeInput, match="expands past 10485760 bytes .*zip bomb"):
        extract(archive, "zip", box.dest, None, cap=10 << 20)


DAMAGED = {
    "corrupt deflate stream": (damage.bad_deflate, "zip", r"'weights.bin': Error -3 .*invalid block type"),
    "bad crc": (damage.bad_crc, "zip", r"member 'vocab.txt': Bad CRC-32"),
    "encrypted member": (damage.encrypted, "zip", r"member 'a.txt' is encrypted"),
    "unknown compression": (damage.unknown_method, "zip", r"member 'a.txt' uses the compression 'method 99'"),
    "damaged tar header": (damage.damaged_tar_header, "tar.gz", r"follows member 'one.txt': damaged header"),
    "corrupt gzip": (damage.corrupt_gzip, "tar.gz", r"follows member 'f3.bin': CRC check failed"),
    "truncated zip": (lambda d: damage.truncated(make_zip(d / "t.zip", [F("a", os.urandom(5000))])), "zip",
                      r"its first member: File is not a zip file"),
    "truncated tar.gz": (lambda d: damage.truncated(make_tar(d / "t.tar.gz", [F("a", os.urandom(50_000))])),
                         "tar.gz", r"member 'a': Compressed file ended"),
    "not gzip at all": (lambda d: (d / "x.tar.gz").write_bytes(b"plain text, no archive") and d / "x.tar.gz",
                        "tar.gz", r"its first member"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_archives_are_one_download_error(box, case) -> None:
    make, kind, pattern = DAMAGED[case]
    archive = make(box.archives)
    with pytest.raises(DownloadError, match=pattern) as info:
        extract(archive, kind, box.dest, None, 1 << 24, label="art/file")
    assert str(info.value).startswith("art/file: ") and "\n" not in str(info.value)
    box.assert_contained()


# --- generated cases ---------------------------------------------------------------------------------

SEGMENTS = ["a", "b", "x", "e"]
name = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join)
target = st.lists(st.sampled_from(SEGMENTS + [".", "..", "secret"]), min_size=1, max_size=4).map("/".join)
entry = st.one_of(
    st.builds(F, name, st.sampled_from([b"1", b"22"])),
    st.builds(D, name),
    st.builds(S, name, target),
    st.builds(H, name, st.one_of(name, target)),
)


def _run_contained(kind: str, entries: list[E]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        box = Sandbox(Path(folder))
        try:
            files = box.extract(kind, entries)
        except UnsafeInput as exc:
            assert "\n" not in str(exc)
        else:
            for rel, info in files.items():  # what was recorded is what is there, at a real path inside
                path = box.dest / rel
                assert os.path.realpath(path) == os.path.join(os.path.realpath(box.dest), rel)
                assert sha256(path.read_bytes()) == info["sha256"]
        box.assert_contained()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entry, min_size=1, max_size=8))
def test_generated_tar_never_escapes(entries) -> None:
    _run_contained("tar.gz", entries)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entry.filter(lambda e: e.kind != "hard"), min_size=1, max_size=8))
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_generated_zip_never_escapes(entries) -> None:
    _run_contained("zip", entries)


VALID = [F("m/vocab.txt", b"[PAD]\n" * 50), D("m/sub"), F("m/sub/w.bin", bytes(range(256)) * 20),
         S("m/v", "vocab.txt")]
DAMAGE = st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3)  # (where, xor) byte flips


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), cut=st.floats(0, 1), flips=DAMAGE)
def test_damaged_streams_are_refused_or_extracted_intact(kind, cut, flips) -> None:
    """Any truncation or byte damage: a one-line DownloadError or UnsafeInput, or files that match
    what was recorded. Never another exception, never a hang."""
    with tempfile.TemporaryDirectory() as folder:
        box = Sandbox(Path(folder))
        archive = build(kind, box.archives, VALID)
        data = bytearray(archive.read_bytes())
        for where, xor in flips:
            data[int(where * (len(data) - 1))] ^= xor
        archive.write_bytes(bytes(data[: max(1, int(len(data) * cut))] if cut < 1 else data))
        try:
            files = extract(archive, kind, box.dest, None, 1 << 20)
        except (DownloadError, UnsafeInput) as exc:
            assert "\n" not in str(exc)
        else:
            for rel, info in files.items():
                assert sha256((box.dest / rel).read_bytes()) == info["sha256"]
        box.assert_contained()


# --- the same through `bertvault pull` --------------------------------------------------------------

def test_pull_of_the_escape_chain_fails_and_writes_nothing(cli, manifest, home, tmp_path) -> None:
    # The view is staged in <env>/cache/artifacts/.stage-*: e3 is <env>, where the secret waits.
    env = home.parent
    (env / "secret").write_bytes(SECRET)
    archive = make_tar(tmp_path / "evil.tar.gz",
                       CHAIN + [F("e3/pwned"), H("leak", "e3/secret"), S("l", "e3/secret")])
    manifest.add("evil", {"path": "evil.tar.gz", "urls": [archive.as_uri()], "archive": "tar.gz"})
    result = cli("pull", "evil", "--progress", "none")
    assert result.exit_code == 6, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: evil/evil.tar.gz: archive member 'e3/pwned'")
    assert not (home / "artifacts" / "evil").exists() and not list((home / "artifacts").iterdir())
    assert not [p for p in env.rglob("*") if p.name == "pwned" or p.is_symlink()]
    assert (env / "secret").read_bytes() == SECRET


def test_pull_of_a_damaged_archive_is_exit_3(cli, manifest, home, tmp_path) -> None:
    archive = damage.bad_deflate(tmp_path)
    manifest.add("broken", {"path": "m.zip", "urls": [archive.as_uri()], "archive": "zip"})
    result = cli("pull", "broken", "--progress", "none")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken/m.zip: cannot extract member 'weights.bin'" in lines[0]
    assert not (home / "artifacts" / "broken").exists()


def test_archive_member_cannot_overwrite_a_plain_file_of_the_view(cli, manifest, home, tmp_path) -> None:
    """The plain file is a hardlink to its blob: writing over it would corrupt the store."""
    (tmp_path / "vocab.txt").write_bytes(b"[PAD]\n")
    archive = make_zip(tmp_path / "m.zip", [F("vocab.txt", b"OVERWRITTEN")])
    manifest.add("mixed", {"path": "vocab.txt", "urls": [(tmp_path / "vocab.txt").as_uri()]},
                 {"path": "m.zip", "urls": [archive.as_uri()], "archive": "zip"})
    result = cli("pull", "mixed", "--progress", "none")
    assert result.exit_code == 6 and "clashes with a file at 'vocab.txt'" in result.stderr
    blob = home / "blobs" / "sha256" / sha256(b"[PAD]\n")[:2] / sha256(b"[PAD]\n")
    assert blob.read_bytes() == b"[PAD]\n"


def test_two_archives_cannot_combine_into_an_escape(tmp_path) -> None:
    box = Sandbox(tmp_path)
    box.extract("tar.gz", [S("x", ".")])
    with pytest.raises(UnsafeInput, match="'e1' links outside the folder"):
        box.extract("zip", [S("e1", "x/..")])
    box.assert_contained()


def test_a_record_through_a_link_is_not_reused(tmp_path) -> None:
    """A view recorded by an older bertvault (or edited) whose member path runs through a link."""
    box = Sandbox(tmp_path)
    os.symlink("..", box.dest / "up")
    members = {"up/secret": {"size": len(SECRET)}}
    record = {"sha256": "0" * 64, "archive": {"sha256": "0" * 64, "members": members}}
    assert assemble._reusable(box.dest, record) is None
    record["archive"]["members"] = {str(box.root / "secret"): {"size": len(SECRET)}}
    assert assemble._reusable(box.dest, record) is None
