"""The command line: parse, call one library function, print, map known errors to exit codes.

Heavy libraries (torch, TensorFlow, transformers) are imported inside the commands that need them,
so `bertvault list` starts about as fast as the interpreter.
"""

# No `from __future__ import annotations` here: typer would then evaluate every option's annotation
# string again for each command at start-up (~20 ms of a conversion's ~0.3 s).

import functools
import gc
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

# pydantic scans every installed distribution for plugins when the first model class is built
# (importlib.metadata, ~30 ms); the manifest schema uses none, and `list` must start fast.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
# numpy's OpenBLAS starts a thread per core at import, and each spins ~0.1 CPU-s waiting for work
# that never comes: bertvault's numpy code copies, transposes and casts (no BLAS), and training
# uses torch's own threads. On a small machine that spin takes a core from a conversion.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer
from typer.core import TyperCommand, TyperGroup

from bertvault import __version__
from bertvault.errors import BertvaultError
from bertvault.sizes import format_size, parse_size

log = logging.getLogger("bertvault")


class _Guarded(typer.Typer):
    """A Typer whose commands turn BertvaultError into one line on stderr and its exit code, Ctrl-C into
    exit 130, and anything unexpected into one line and exit 1 (`--debug` shows the traceback)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable:
        kwargs.setdefault("cls", _Command)
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def guarded(*a: Any, **kw: Any) -> Any:
                try:
                    return fn(*a, **kw)
                except BertvaultError as exc:
                    if _debug():
                        raise
                    _leaving()
                    typer.echo(f"error: {exc}", err=True)
                    raise typer.Exit(exc.exit_code) from None
                except KeyboardInterrupt:
                    _leaving()
                    typer.echo("interrupted", err=True)
                    raise typer.Exit(130) from None
                except (typer.Exit, typer.Abort, SystemExit):
                    raise
                except Exception as exc:  # noqa: BLE001 - the last resort: a fault bertvault does not know yet
                    if _debug():
                        raise
                    typer.echo(_internal_error(exc), err=True)
                    raise typer.Exit(1) from None

            register(guarded)
            return fn

        return decorator


_AS_PROGRAM = False  # set by main(): signals are the process's own (not a test runner's)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _leaving() -> None:
    """The command is over and says why: a further Ctrl-C or SIGTERM (a second press, a scheduler's
    follow-up) ends the process at once with 130 instead of a traceback or a death by signal.
    Every output is already whole or absent (io/atomic.py)."""
    if _AS_PROGRAM:
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: os._exit(130))


def _internal_error(exc: BaseException) -> str:
    """One line for a fault bertvault does not know; its traceback goes to a log for the bug report."""
    import datetime
    import traceback

    from bertvault import paths

    what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"internal error: {type(exc).__name__}{': ' + what if what else ''}"
    log_file = paths.home() / "internal-errors.log"
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a", encoding="utf-8") as out:
            when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            out.write(f"--- {when} bertvault {__version__}: {' '.join(sys.argv)}\n"
                      f"{''.join(traceback.format_exception(exc))}")
        return f"{line}; the traceback is in {log_file} (or run with --debug)"
    except OSError:
        return f"{line}; run with --debug for the traceback"


def _debug() -> bool:
    return os.environ.get("BERTVAULT_DEBUG", "") not in ("", "0")


# Help is wrapped by click, which breaks a line after any hyphen: `bert-large-⏎original`. A hyphen
# inside a word is held by a non-breaking one while the help is laid out, and given back after.
_HELD_HYPHEN = "\u2011"
_IN_WORD_HYPHEN = re.compile(r"(?<=\S)-(?=\S)")


def _hold(text: str) -> str:
    return _IN_WORD_HYPHEN.sub(_HELD_HYPHEN, text)


class _HelpFormatter(TyperCommand.context_class.formatter_class):
    def write_text(self, text: str) -> None:
        super().write_text(_hold(text))

    def write_dl(self, rows: Any, *args: Any, **kwargs: Any) -> None:
        super().write_dl([(term, _hold(text)) for term, text in rows], *args, **kwargs)

    def getvalue(self) -> str:
        return super().getvalue().replace(_HELD_HYPHEN, "-")


class _Context(TyperCommand.context_class):
    formatter_class = _HelpFormatter


def _usage_piece(param: Any) -> str:
    """NAME, [NAME], SOURCE..., as usage lines are written (typer 0.28 writes {name})."""
    shown = param.metavar or param.name.upper()
    if param.nargs != 1 and not shown.endswith("..."):
        shown += "..."
    return shown if param.required else f"[{shown}]"


class _Command(TyperCommand):
    context_class = _Context

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_usage_piece(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]


class _Group(TyperGroup):
    context_class = _Context


def _app(help: str, **kwargs: Any) -> _Guarded:
    return _Guarded(help=help, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                    cls=_Group, **kwargs)


app = _app(
    """bertvault: the registry, downloader, converter and trainer for published BERT checkpoints and data.

    \b
    Examples:
      bertvault list --kind checkpoint
      bertvault info multi_cased
      bertvault COMMAND --help
    """,
)
manifest_app = _app("Check manifest files.")
app.add_typer(manifest_app, name="manifest")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bertvault {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="BERTVAULT_DEBUG", help="Show tracebacks and debug logs.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    if debug:
        os.environ["BERTVAULT_DEBUG"] = "1"
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _console():
    from rich.console import Console

    return Console()


def _on_terminal() -> bool:
    return sys.stdout.isatty()


@dataclass(frozen=True)
class _Col:
    """A table column. Where the terminal is too narrow for every column, the ones of lowest `rank` are
    left out first (the first column always stays); a column with `shrink` is cut to as few as that many
    characters, ending in …, before any column is left out. A `hash` column shows 8 hex digits and …
    on a terminal (--json and pipes carry every digit)."""

    name: str
    rank: int = 0
    shrink: int | None = None
    hash: bool = False


_GAP = 2  # spaces between two columns, on a terminal as in a pipe
_SHORT_HASH = re.compile(r"[0-9a-f]{9,}")


def _print_table(title: str, columns: list[_Col], rows: list[list[str]], console: Any = None) -> None:
    """Drawn by rich on a terminal, fitted to its width. In a pipe or a log: plain columns, one line a
    row, nothing cut, no box drawing to grep around (and no rich to import, a tenth of a second of every
    such command)."""
    if console is None and _on_terminal():
        console = _console()
    if console is not None:
        from rich.text import Text

        console.print(Text(title, style="table.title"), soft_wrap=True)  # never cut: a name may be in it
        console.print(_rich_table(columns, rows, console.width))
        return
    rows = [[cell.replace("\n", " ") for cell in row] for row in rows]
    widths = [max([len(c.name)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    lines = [title] + [(" " * _GAP).join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                       for row in [[c.name for c in columns], *rows]]
    typer.echo("\n".join(lines))


def _terminal_cell(column: _Col, cell: str) -> str:
    return f"{cell[:8]}…" if column.hash and _SHORT_HASH.fullmatch(cell) else cell


def _fit(columns: list[_Col], natural: list[int], width: int) -> dict[int, int]:
    """Column index -> its width on a terminal `width` characters wide."""
    narrowest = [min(n, c.shrink) if c.shrink else n for c, n in zip(columns, natural)]
    shown = list(range(len(columns)))

    def need(indexes: list[int]) -> int:
        return sum(narrowest[i] for i in indexes) + _GAP * (len(indexes) - 1)

    while len(shown) > 1 and need(shown) > width:
        shown.remove(min(shown[1:], key=lambda i: (columns[i].rank, -i)))
    widths = {i: narrowest[i] for i in shown}
    spare = width - need(shown)
    for i in shown:  # the room left goes back to the columns that were cut, left to right
        extra = max(0, min(spare, natural[i] - widths[i]))
        widths[i] += extra
        spare -= extra
    if spare < 0:  # one column wider than the terminal
        widths[shown[0]] = max(1, widths[shown[0]] + spare)
    return widths


def _rich_table(columns: list[_Col], rows: list[list[str]], width: int):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells = [[_terminal_cell(c, cell) for c, cell in zip(columns, row)] for row in rows]
    natural = [max([len(c.name)] + [len(line) for row in cells for line in row[i].splitlines()])
               for i, c in enumerate(columns)]
    widths = _fit(columns, natural, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, _GAP - 1, 0, 0),
                  collapse_padding=True)
    for i, size in widths.items():
        table.add_column(columns[i].name, width=size, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in widths))
    return table


def _registry():
    from bertvault.registry import load_registry

    return load_registry()


def _choice_problem(option: str, value: str | None, choices: tuple[str, ...] | list[str]) -> list[str]:
    """[] when `value` is one of `choices` (or not given), else the problem, said as every option says it."""
    if value is None or value in choices:
        return []
    return [f"{option} must be one of {', '.join(choices)}, got {value!r}"]


def _size_option(text: str, option: str, problems: list[str]) -> int | None:
    """A size option's bytes; a malformed one is added to `problems` (to be said with the others)."""
    from bertvault.errors import UsageError

    try:
        return parse_size(text, option)
    except UsageError as exc:
        problems.extend(exc.problems)
        return None


def _cached_name(name: str) -> str:
    """The artifact a name or alias means, for a command about the cache: a registered one, or one the
    cache holds that no manifest declares any more; any other name is refused with suggestions."""
    from bertvault.cache import layout, metadata

    registry = _registry()
    if name in registry:
        return registry.get(name).name
    layout.check_name(name)  # a path, or nothing, is refused as such before any suggestion
    if name in metadata.names():
        return name
    return registry.get(name).name  # unknown: refused with the names it may have meant


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option(help="Only this kind: checkpoint or dataset.")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", help="Only this format, e.g. tf1-checkpoint.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every registered artifact.

    \b
    Examples:
      bertvault list
      bertvault list --kind dataset
      bertvault list --format tf1-checkpoint --json
    """
    from bertvault.errors import UsageError
    from bertvault.registry import FORMATS

    problems = []
    if kind not in (None, "checkpoint", "dataset"):
        problems.append(f"--kind must be checkpoint or dataset, got {kind!r}")
    if format is not None and format not in FORMATS:
        problems.append(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if problems:
        raise UsageError(problems)

    from bertvault.cache.catalog import select

    rows = select(_registry(), kind, format)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    columns = [_Col("name"), _Col("kind", 2), _Col("format", 7), _Col("architecture", 4), _Col("size", 6),
               _Col("pinned", 3), _Col("cached", 5)]
    _print_table(f"{len(rows)} artifacts", columns, [
        [row["name"] + (" (user)" if row["user_override"] or not row["builtin"] else ""), row["kind"],
         row["format"],
         row["architecture"] or "", _shown_size(row["size"], row["size_is_exact"]), row["pinned"],
         "yes" if row["cached"] else ""]
        for row in rows
    ])


def _shown_size(size: int | None, exact: bool) -> str:
    """'1.3 GB' when exact, '~1.3 GB' when approximate, '?' when unknown."""
    return format_size(size) if exact or size is None else f"~{format_size(size)}"


@app.command()
def info(
    name: Annotated[str, typer.Argument(
        metavar="NAME", help="Artifact name or alias, or a path bertvault wrote.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Everything about one artifact: files, mirrors, hashes, what it needs and what it equals.
    Given a path that bertvault wrote (a conversion, a trained model), its provenance record.

    \b
    Examples:
      bertvault info multi_cased
      bertvault info bert-large-original --json
      bertvault info runs/pretrain/final
    """
    if Path(name).exists():
        _show_provenance(Path(name), as_json)
        return
    from bertvault.cache.catalog import details

    data = details(_registry(), name)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    facts = {
        "aliases": ", ".join(data["aliases"]),
        "architecture": ", ".join(f"{k}={v}" for k, v in (data["architecture"] or {}).items()),
        "publisher": data["publisher"],
        "homepage": data["homepage"],
        "license": data["license"],
        "vocab from": data["vocab_from"],
        "same weights as": ", ".join(data["same_weights_as"]),
        "size": _shown_size(data["size"], data["size_is_exact"]),
        "pinned": data["pinned"],
        "cached": "yes" if data["cached"] else "no",
        "cache folder": data["cache_dir"],
        "manifest": data["manifest"] + (" (user override)" if data["user_override"] else ""),
        "pinned by": ", ".join(data["pins"]),
    }
    _print_facts(f"{data['name']} ({data['kind']}, {data['format']})", data["description"],
                 [(key, str(value)) for key, value in facts.items() if value])
    rows = []
    for f in data["files"]:
        members = f"{f['member_hashes']} member hashes" if f["member_hashes"] else ""
        archive = ", ".join(part for part in (f.get("archive"), members) if part)
        path = f["path"] + (" (optional)" if f.get("optional") else "")
        unpinned = "members pinned" if members else "not pinned"
        size = _shown_size(f["shown_size"], f["size_is_exact"])
        rows.append([path, size, f.get("sha256", unpinned), archive, "\n".join(f["urls"])])
    columns = [_Col("path"), _Col("size", 5), _Col("sha256", 4, hash=True), _Col("archive", 2, shrink=10),
               _Col("mirrors", 3, shrink=20)]
    _print_table("files", columns, rows)


def _print_facts(title: str, about: str, facts: list[tuple[str, str]]) -> None:
    """A title, a line about it, and `key  value` lines: on a terminal a long value wraps inside its
    column; in a pipe each fact is one line, whatever its length (JSON values too)."""
    if not _on_terminal():
        typer.echo("\n".join([title, *([about] if about else []),
                              *(f"  {key:16} {value}" for key, value in facts)]))
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    console.print(Text(title, style="bold"))
    if about:
        console.print(Text(about))
    grid = Table.grid(padding=(0, 1, 0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in facts:
        grid.add_row(key, Text(value))
    console.print(grid)


def _show_provenance(path: Path, as_json: bool) -> None:
    from bertvault.errors import UsageError
    from bertvault.provenance import read_record, record_path

    record = read_record(path)
    if record is None:
        raise UsageError(f"{path} carries no provenance record ({record_path(path).name}); "
                            "only outputs written by bertvault have one")
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    facts = [("command", record.get("command", "")), ("created", str(record.get("created")))]
    for source in record.get("sources", []):
        facts.append(("source", str(source.get("artifact") or source.get("source"))))
        hashes = sorted((source.get("files") or {}).items())
        facts += [("", f"{file}  sha256 {digest}") for file, digest in hashes]
    facts += [(key, json.dumps(value, default=str)) for key, value in record.items()
              if key not in {"step", "bertvault_version", "command", "created", "sources"}]
    _print_facts(f"{path}: {record.get('step')} by bertvault {record.get('bertvault_version')}", "", facts)


@app.command()
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the new artifact.")],
    urls: Annotated[list[str], typer.Argument(
        metavar="URL...", help="File URLs; URLs with the same file name are mirrors.")],
    kind: Annotated[str, typer.Option(help="checkpoint or dataset.")] = "checkpoint",
    format: Annotated[str, typer.Option(
        "--format", help="Format, e.g. hf-safetensors, tf1-checkpoint.")] = "hf-safetensors",
    sha256: Annotated[list[str] | None, typer.Option(
        "--sha256", help="sha256 of each file, in order.")] = None,
    alias: Annotated[list[str] | None, typer.Option(
        "--alias", help="Another name for it (repeatable).")] = None,
    arch: Annotated[str | None, typer.Option(
        help="Checkpoints: LAYERS-HIDDEN-HEADS[-VOCAB][-cased], e.g. 12-768-12-30522.")] = None,
    vocab_from: Annotated[str | None, typer.Option(help="Artifact whose vocab.txt this one uses.")] = None,
    description: Annotated[str, typer.Option(help="One line about it.")] = "",
    manifest: Annotated[
        Path | None, typer.Option(help="Manifest to append to (default: the user manifest).")
    ] = None,
) -> None:
    """Append an artifact to your user manifest.

    \b
    Examples:
      bertvault add my-bert https://example.org/my-bert.zip \\
          --format tf1-checkpoint --arch 12-768-12-30522
      bertvault add my-corpus https://example.org/corpus.txt.gz \\
          --kind dataset --format text
    """
    from bertvault import paths
    from bertvault.errors import ManifestError, UsageError, raise_if
    from bertvault.registry import FORMATS
    from bertvault.registry.user import add_artifact, build_table

    problems = _choice_problem("--kind", kind, ("checkpoint", "dataset"))
    problems += _choice_problem("--format", format, FORMATS)
    if kind == "checkpoint" and arch is None:
        problems.append("a checkpoint needs --arch LAYERS-HIDDEN-HEADS (e.g. --arch 12-768-12), "
                        "or --kind dataset")
    try:
        table = build_table(name, urls, kind=kind, fmt=format, sha256=sha256 or [], aliases=alias or [],
                            arch=arch, vocab_from=vocab_from, description=description)
    except ManifestError as exc:
        problems.extend(exc.problems)
    raise_if(problems, UsageError)
    target = manifest or paths.default_user_manifest()
    artifact = add_artifact(target, table)
    typer.echo(f"added {artifact.name} ({len(artifact.files)} files) to {target}")


@manifest_app.command("validate")
def manifest_validate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Manifest files to check.")],
) -> None:
    """Check manifest files: TOML syntax, schema, and no clash with the built-in names.

    \b
    Example:
      bertvault manifest validate ~/.config/bertvault/manifests/*.toml
    """
    from bertvault.registry.user import validate_files

    for file, count in validate_files(files).items():
        typer.echo(f"ok: {file} ({count} artifacts)")


@app.command()
def prepare(
    inputs: Annotated[list[str], typer.Argument(
        metavar="INPUT...",
        help="Text files (one sentence per line, blank line between documents; .gz too), folders, globs, "
             "AzureML .bin shards or TFRecord files.")],
    vocab_from: Annotated[str, typer.Option(
        "--vocab-from", help="Registered checkpoint name, its folder, or a vocab.txt.")],
    out: Annotated[str, typer.Option("--out", help="New or empty output folder.")],
    seq_len: Annotated[int | None, typer.Option(
        help="Tokens per example [default: 128 for text; 512 for AzureML shards; a TFRecord's own "
             "length]")] = None,
    max_predictions: Annotated[int, typer.Option(help="Masked positions per example at most.")] = 20,
    masked_lm_prob: Annotated[float, typer.Option(help="Share of tokens to mask.")] = 0.15,
    dupe_factor: Annotated[int | None, typer.Option(
        help="Passes over the text with different pairs [default: 1 for native (masks are dynamic), "
             "10 for tfrecord (google's default)]")] = None,
    short_seq_prob: Annotated[float, typer.Option(
        help="Chance of a shorter target length per document.")] = 0.1,
    whole_word_mask: Annotated[bool, typer.Option("--whole-word-mask", help="Mask whole words.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 12345,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = min(4, os.cpu_count() or 1),
    engine: Annotated[str, typer.Option(
        help="Where the work items run: local (--workers processes) or ray (tasks on a running Ray "
             "cluster; pip install 'bertvault[ray]').")] = "local",
    ray_address: Annotated[str, typer.Option(
        envvar="RAY_ADDRESS", help="--engine ray: the cluster, HOST:PORT or auto (the one started on "
                                   "this machine).")] = "auto",
    format: Annotated[str, typer.Option(
        "--format", help="native (memory-mapped ids, dynamic masking) or tfrecord "
                         "(google-research/bert).")] = "native",
    lowercase: Annotated[bool | None, typer.Option(
        "--lowercase/--no-lowercase",
        help="Lower-case and strip accents [default: the checkpoint's case: registry entry, tokenizer "
             "config, else whether the vocab holds upper-case tokens]")] = None,
) -> None:
    """Turn raw text, AzureML shards or TFRecords into masked-LM / next-sentence pretraining examples.

    \b
    Examples:
      bertvault prepare corpus/ --vocab-from bert-base-uncased --out data/wiki128
      bertvault prepare 'wiki/*.txt.gz' --vocab-from ./uncased_L-12_H-768_A-12 \\
          --out tfr --format tfrecord
      bertvault prepare wikipedia_segmented_part_*.bin \\
          --vocab-from bert-base-uncased --out data/azure512
      bertvault prepare /shared/c4/ --vocab-from bert-base-uncased \\
          --out gs://my-bucket/c4-128 --engine ray --ray-address head:6379
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from bertvault.data import prepare as prep

    options = prep.Options(seq_len=seq_len, max_predictions=max_predictions, masked_lm_prob=masked_lm_prob,
                           dupe_factor=dupe_factor, short_seq_prob=short_seq_prob,
                           whole_word_mask=whole_word_mask, seed=seed, workers=workers, format=format,
                           engine=engine, ray_address=ray_address)
    plan = prep.plan(inputs, vocab_from, out, options, lowercase)
    err = Console(stderr=True)
    for note in plan.notes:
        err.print(note, markup=False, highlight=False, soft_wrap=True)
    columns = (TextColumn("prepare"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TextColumn("{task.fields[documents]:,} documents"),
               TextColumn("{task.fields[examples]:,} examples"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("prepare", total=plan.total_bytes, documents=0, examples=0)

        def report(size: int, documents: int, examples: int) -> None:
            fields = progress.tasks[task].fields
            progress.update(task, advance=size, documents=fields["documents"] + documents,
                            examples=fields["examples"] + examples)

        header = prep.run(plan, report)
    if plan.remote:
        import shutil

        from bertvault.push import push as push_

        push_(str(plan.out), plan.remote)
        shutil.rmtree(plan.out, ignore_errors=True)
    counts = header["counts"]
    random_share = counts["random_next"] / max(1, counts["examples"])
    typer.echo(
        f"wrote {counts['examples']:,} examples ({counts['tokens']:,} tokens, {random_share:.1%} random "
        f"next) in {len(header['shards'])} {header['kind']} shard(s) to {plan.remote or plan.out} in "
        f"{header['seconds']:.1f} s"
    )


def _train_display(total: int, label: str = "pretrain", tagged: bool = False):
    """A live progress bar on a terminal, one line per logging step otherwise (logs, pipes, CI)."""
    from bertvault.train.metrics import LiveDisplay, PlainDisplay

    console = _console()
    if console.is_terminal:
        return LiveDisplay(console, total, label=label)
    return PlainDisplay(typer.echo, total, label if tagged else None)


def _quiet_unless_rank_zero(fn: Callable) -> Callable:
    """Under torchrun every rank hits the same bad input: each leaves its error to the launcher,
    which prints one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BertvaultError as exc:
            from bertvault.train.launch import hand_error_to_launcher

            if not _debug() and hand_error_to_launcher(exc):
                raise typer.Exit(exc.exit_code) from None
            raise

    return wrapper


def _settings(name: str) -> type:
    from bertvault.train import config

    return getattr(config, name)


def _or(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


def _setting_options(cls: type) -> list[inspect.Parameter]:
    """The command-line options of a settings dataclass, from its fields: name, type, default and help
    are written once, in train/config.py. Every option defaults to None here, so a settings file
    (--config-file) can supply what the command line leaves out; the help states the real default."""
    import dataclasses
    import typing

    from bertvault.train.config import flag_of

    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        kind = hints[f.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        default = f.default if f.default is not dataclasses.MISSING else None
        text = meta["help"].rstrip(".") + (f": {_or(meta['choices'])}" if meta.get("choices") else "")
        unshown = default is None or default is False or default == ""  # (a default of 0 is shown)
        shown = meta.get("shown") or (None if unshown else default)
        flag = flag_of(f)
        declared = [f"{flag}/--no-{flag[2:]}"] if base is bool else [flag]
        text += (f" [default: {shown}]" if shown is not None else "") + "."
        option = typer.Option(*declared, help=text, rich_help_panel=meta.get("panel"), show_default=False)
        options.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                         annotation=Annotated[base | None, option]))
    return options


_CONFIG_FILE = inspect.Parameter(
    "config_file", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[Path | None, typer.Option(
        help="TOML or YAML file with any of these settings (options given here win).")])


_RESUME = inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
    bool, typer.Option("--resume", help="Continue the run in --out from its newest checkpoint.")])


def _training_command(name: str, cls: type, doc: str, *extra: inspect.Parameter):
    """Register `fn(**options)` as the command `name`, its options those of `cls` plus `extra`."""

    def register(fn: Callable) -> Callable:
        parameters = [*extra, _CONFIG_FILE, *_setting_options(cls)]
        fn.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in parameters}
        fn.__doc__ = doc
        app.command(name)(_quiet_unless_rank_zero(fn))
        return fn

    return register


@_training_command("pretrain", _settings("PretrainSettings"), """Continue pretraining a BERT checkpoint
    (MLM + NSP) on your text, or pretrain one from scratch.

    \b
    Examples:
      bertvault pretrain --from multi_cased --data corpus.txt --out runs/domain \\
          --steps 10000
      bertvault pretrain --from scratch --config 4-256-4 --vocab vocab.txt \\
          --data data/wiki128 --out runs/mini
      bertvault pretrain --from bert-base-uncased --data 'tfr/*.tfrecord' \\
          --out runs/b --nproc-per-node 8
      bertvault pretrain --out runs/domain --resume
    """, _RESUME)
def pretrain(*, resume: bool = False, config_file: Path | None = None, **given: Any) -> None:
    from bertvault.train import config as settings_module
    from bertvault.train import launch
    from bertvault.train import pretrain as pretraining

    file_values = settings_module.read_settings_file(config_file, "pretrain") if config_file else {}
    settings = pretraining.resolve_settings(file_values, given, resume)
    result = launch.dispatch(settings, pretraining.run, resume, argv=sys.argv[1:],
                             preflight=lambda: pretraining.preflight(settings, resume),
                             display=lambda: _train_display(settings.steps))
    if result is not None and os.environ.get("RANK", "0") == "0":
        typer.echo(f"done: {result.step} steps; model in {result.model_dir}"
                   + (f", TF1 checkpoint in {result.tf1_dir}" if result.tf1_dir else ""))


@_training_command("finetune", _settings("FinetuneSettings"), """Finetune a BERT checkpoint: sentence(-pair)
    classification or regression, extractive question answering (SQuAD), token classification (NER), or a
    GLUE task; keep the best epoch.

    \b
    Examples:
      bertvault finetune --from bert-base-uncased --train SST-2/train.tsv \\
          --eval SST-2/dev.tsv --out runs/sst2
      bertvault finetune --from bert-base-uncased --task glue/mrpc --out runs/mrpc
      bertvault finetune --from bert-base-uncased --task squad \\
          --train train-v1.1.json --eval dev-v1.1.json --out runs/squad
      bertvault finetune --from bert-base-cased --task token-classification \\
          --train eng.train --eval eng.testa --out runs/ner
      bertvault finetune --out runs/squad --resume
    """, _RESUME)
def finetune(*, resume: bool = False, config_file: Path | None = None, **given: Any) -> None:
    from bertvault.train import config as settings_module
    from bertvault.train import finetune as finetuning
    from bertvault.train import launch

    file_values = settings_module.read_settings_file(config_file, "finetune") if config_file else {}
    settings = finetuning.resolve_settings(file_values, given, resume=resume)
    result = launch.dispatch(settings, finetuning.run, resume, argv=sys.argv[1:],
                             display=lambda: _train_display(settings.epochs, label="finetune"))
    if result is not None and os.environ.get("RANK", "0") == "0":
        best = ", ".join(f"{k} {v:.4f}" for k, v in result.best_scores.items())
        typer.echo(f"done: best epoch {result.best_epoch} ({best}); model in {result.model_dir}"
                   + (f", TF1 checkpoint in {result.tf1_dir}" if result.tf1_dir else "")
                   + (f"; predictions in {result.predictions}" if result.predictions else ""))


evaluate_app = _app("Score a checkpoint on a standard benchmark suite.")
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("glue")
def evaluate_glue(
    from_: Annotated[str, typer.Option("--from", help="Registered checkpoint name or a checkpoint path.")],
    out: Annotated[Path, typer.Option(help="Output folder: one finetune per task and rate, glue.json.")],
    tasks: Annotated[list[str] | None, typer.Option(
        "--tasks", help="GLUE tasks (repeatable) [default: all nine].")] = None,
    lrs: Annotated[list[float] | None, typer.Option(
        "--lrs", help="Learning rates of the sweep (repeatable) [default: 5e-5, 3e-5, 2e-5].")] = None,
    data: Annotated[Path | None, typer.Option(
        help="A GLUE data folder (glue_data/ or the Hub's files) [default: the pulled `glue` "
             "artifacts].")] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per device per step.")] = 32,
    epochs: Annotated[int, typer.Option(help="Passes over each training file.")] = 3,
    max_seq_len: Annotated[int, typer.Option(help="Tokens per example at most.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or tpu.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    keep: Annotated[str, typer.Option(help="Models to keep: best (per task) or all.")] = "best",
) -> None:
    """The GLUE suite with the recipe of BERT's paper: a learning-rate sweep per task, the best dev run
    kept, and the table papers print (also in OUT/glue.json). A rerun skips finished runs.

    \b
    Examples:
      bertvault evaluate glue --from bert-base-uncased --out runs/glue
      bertvault evaluate glue --from runs/domain/model --tasks mrpc --tasks rte \\
          --lrs 2e-5 --out runs/glue-small
    """
    from bertvault.train.tasks import glue_suite

    values = {"batch_size": batch_size, "epochs": epochs, "max_seq_len": max_seq_len, "device": device,
              "precision": precision, "seed": seed}
    summary = glue_suite.run_suite(from_, out, tasks=tasks, lrs=tuple(lrs) if lrs else glue_suite.SWEEP,
                                   data=str(data) if data else None, values=values, keep=keep,
                                   display_for=lambda task, lr: _train_display(
                                       epochs, label=f"glue/{task} lr {lr:g}", tagged=True))
    typer.echo(glue_suite.format_table(summary))
    typer.echo(f"results in {Path(out) / 'glue.json'}")


_PROGRESS = ("auto", "bars", "log", "none")


def _progress_reporter(mode: str, every: float):
    """Rich bars on a terminal, periodic plain lines otherwise (or as asked)."""
    from bertvault.fetch.progress import LogReporter, RichReporter

    if mode == "auto":
        mode = "bars" if sys.stderr.isatty() else "log"
    reporters = {
        "bars": lambda: RichReporter(_stderr_console()),
        "log": lambda: LogReporter(sys.stderr, every),
        "none": lambda: LogReporter(sys.stderr, 0),  # retries, waits and mismatches are still said
    }
    return reporters[mode]()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _print_pull(report) -> None:
    """The files the pull holds, one row each, and the hashes it learned; a file that failed is said
    once, by the error that follows."""
    from bertvault.fetch.progress import shown_speed

    rows = []
    for r in report.results:
        if r.status == "failed":
            continue
        fetched = format_size(r.fetched) if r.fetched else ""
        if r.fetched and r.resumed:
            fetched += f" (+{format_size(r.resumed)} resumed)"
        rows.append([r.path, r.status, format_size(r.size), fetched, shown_speed(r.fetched, r.seconds),
                     r.sha256 or "", r.trust, r.url or ""])
    if rows:
        columns = [_Col("file"), _Col("status", 7), _Col("size", 6), _Col("fetched", 2), _Col("speed", 5),
                   _Col("sha256", 4, hash=True), _Col("trust", 3), _Col("source", 1, shrink=20)]
        _print_table(f"{report.artifact}: {len(rows)} files", columns, rows)
    for r in report.first_use[:3]:
        typer.echo(f"first use: {r.path} sha256 {r.sha256} recorded; later pulls and `bertvault verify` "
                   f"hold the file to it")
    if len(report.first_use) > 3:
        typer.echo(f"first use: {len(report.first_use) - 3} more files' sha256 recorded likewise "
                   f"(`bertvault pull {report.artifact} --json` lists them)")
    if report.first_use:
        typer.echo(f"publish these hashes with `bertvault pin {report.artifact} --write FILE`")


@app.command()
def pull(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Artifact name or alias.")],
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Only the files matching this glob (repeatable); selects optional files "
                          "too.")] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Also put the pulled files in this folder.")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", envvar="BERTVAULT_OFFLINE", help="No network request: use the cache or fail.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Files downloaded at once.")] = 4,
    connections: Annotated[int, typer.Option(
        "--connections", "-c", help="Connections (byte ranges) per file.")] = 8,
    chunk_size: Annotated[str, typer.Option(
        help="Bytes per ranged request, e.g. 8M; auto: 8-64 MiB by file size.")] = "auto",
    retries: Annotated[int, typer.Option(
        help="Failures in a row, without progress, before a mirror is dropped.")] = 6,
    retry_wait: Annotated[float, typer.Option(
        help="Backoff factor in seconds: waits of about 0, 2x, 4x, ...")] = 0.5,
    stall_timeout: Annotated[float, typer.Option(
        help="Seconds without a byte before a connection is retried.")] = 30.0,
    progress: Annotated[str, typer.Option(
        help="auto (bars on a terminal, else log lines), bars, log, or none (only warnings).")] = "auto",
    log_every: Annotated[float, typer.Option(help="Seconds between progress lines in log mode.")] = 5.0,
    fsync: Annotated[bool, typer.Option(
        help="Sync data to disk before it is journaled or installed (--no-fsync: faster, but a power loss "
             "can then leave a damaged file that only `bertvault verify` finds).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON for scripts.")] = False,
) -> None:
    """Download an artifact into the cache: resumable, several connections, every hash verified.

    \b
    Examples:
      bertvault pull bert-base-uncased
      bertvault pull azureml-wiki-512 --include 'wikipedia_segmented_part_1?.bin'
      bertvault pull multi_cased --to ./multi_cased
    """
    from bertvault.errors import UsageError, raise_if
    from bertvault.fetch.options import PullOptions
    from bertvault.fetch.pull import pull as run_pull

    problems: list[str] = []
    chunk = None if chunk_size == "auto" else _size_option(chunk_size, "--chunk-size", problems)
    options = PullOptions(include=tuple(include or ()), to=to, offline=offline, jobs=jobs,
                          connections=connections, chunk_size=chunk, retries=retries, retry_wait=retry_wait,
                          stall_timeout=stall_timeout, fsync=fsync)
    problems += options.problems() + _choice_problem("--progress", progress, _PROGRESS)
    problems += [f"{flag} must be 0 or more, got {value}"
                 for flag, value in (("--retry-wait", retry_wait), ("--log-every", log_every)) if value < 0]
    raise_if(problems, UsageError)
    report = run_pull(name, options, _progress_reporter("none" if as_json else progress, log_every))
    if as_json:
        _print_pull_json(report)
    else:
        _print_pull(report)
    error = report.error()
    if error is not None:
        raise error
    if not as_json:
        where = f" and {report.materialized}" if report.materialized else ""
        state = "complete" if report.complete else "partial (some files not selected)"
        typer.echo(f"{report.artifact}: {state}, in {report.view}{where}")


def _print_pull_json(report) -> None:
    from dataclasses import asdict

    typer.echo(json.dumps({"artifact": report.artifact, "view": str(report.view), "complete": report.complete,
                           "materialized": str(report.materialized) if report.materialized else None,
                           "plan": asdict(report.plan) if report.plan else None,
                           "files": [asdict(r) for r in report.results]}, indent=2))


@app.command()
def verify(
    names: Annotated[list[str] | None, typer.Argument(
        metavar="NAME...", help="Artifacts to check (default: every cached one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Hash the cached files again and compare with every recorded and pinned hash.

    \b
    Examples:
      bertvault verify
      bertvault verify bert-base-uncased
    """
    from dataclasses import asdict

    from bertvault.errors import ManifestError, UsageError, raise_if
    from bertvault.fetch.verify import failures
    from bertvault.fetch.verify import verify as run_verify

    problems, known = [], []
    for name in names or []:  # every name checked before any file is hashed
        try:
            known.append(_cached_name(name))
        except (ManifestError, UsageError) as exc:
            problems.extend(exc.problems)
    raise_if(problems, ManifestError)
    checks = run_verify(known)
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        columns = [_Col("artifact"), _Col("file", 10), _Col("status", 8), _Col("size", 5), _Col("speed", 4),
                   _Col("detail", 6, shrink=16)]
        _print_table(f"{len(checks)} files checked", columns, [
            [c.artifact, c.path, c.status, format_size(c.size),
             f"{format_size(c.size / c.seconds)}/s" if c.seconds else "", c.detail]
            for c in checks
        ])
    error = failures(checks)
    if error is not None:
        raise error


@app.command()
def pin(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A pulled artifact.")],
    write: Annotated[
        Path | None,
        typer.Option("--write", help="Manifest to write (default: the user manifest; for your own artifact, "
                                     "its manifest)."),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Move the artifact's hf:// files to the Hub's current commit "
                                             "and show what changed."),
    ] = False,
) -> None:
    """Write the sha256 and size observed at pull time into a manifest (trust on first use, made explicit).
    A built-in artifact gets a [[pin]] table laid over it, never a copy of its entry.

    \b
    Examples:
      bertvault pin bert-large-original
      bertvault pin bert-large-original --write pinned.toml
      bertvault pin bert-base-uncased --refresh
    """
    if refresh:
        from bertvault.fetch.hubpin import refresh as run_refresh

        report = run_refresh(name, write)
    else:
        from bertvault.fetch.pin import pin as run_pin

        report = run_pin(name, write)
    typer.echo("\n".join(report.lines()))


cache_app = _app("Inspect and clean the download cache.")
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def cache_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List cached artifacts and what the cache holds.

    \b
    Examples:
      bertvault cache ls
      bertvault cache ls --json
    """
    from bertvault.cache.gc import listing, totals

    rows, sizes = listing(), totals()
    if as_json:
        typer.echo(json.dumps({"artifacts": rows, "bytes": sizes}, indent=2))
        return
    columns = [_Col("name"), _Col("files", 4), _Col("size", 6), _Col("complete", 5),
               _Col("trust", 3, shrink=12), _Col("updated", 2)]
    _print_table(f"{len(rows)} cached artifacts", columns, [
        [r["name"], str(r["files"]), format_size(r["size"]), "yes" if r["complete"] else "no", r["trust"],
         r["updated"] or ""]
        for r in rows
    ])
    typer.echo(", ".join(f"{k}: {format_size(v)}" for k, v in sizes.items()))


@cache_app.command("rm")
def cache_rm(name: Annotated[str, typer.Argument(metavar="NAME", help="Cached artifact to forget.")]) -> None:
    """Remove an artifact's view and record, and the blobs no other artifact uses.

    \b
    Example:
      bertvault cache rm bert-base-uncased
    """
    from bertvault.cache.gc import remove

    name = _cached_name(name)
    done = remove(name)
    typer.echo(f"removed {name}: {done['blobs_removed']} blobs, {format_size(done['bytes_freed'])} freed")


@cache_app.command("gc")
def cache_gc(
    partial_days: Annotated[float, typer.Option(
        help="Drop partial downloads untouched for this many days.")] = 7.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
) -> None:
    """Drop orphan blobs, stale partial downloads, quarantined files and leftovers of dead processes.

    \b
    Examples:
      bertvault cache gc --dry-run
      bertvault cache gc --partial-days 0
    """
    from bertvault.cache.gc import gc
    from bertvault.errors import UsageError

    if partial_days < 0:
        raise UsageError(f"--partial-days must be 0 or more, got {partial_days}")
    report = gc(partial_age_days=partial_days, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(report.blobs)} orphan blobs, {len(report.partials)} partial downloads, "
               f"{len(report.quarantined)} quarantined files, {len(report.leftovers)} leftovers: "
               f"{format_size(report.bytes_freed)}")


@app.command("convert")
def convert_(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="A checkpoint path (file, TF prefix or folder) or a registered name.")],
    to: Annotated[str, typer.Option("--to", help="Target: safetensors, pt, tf1, hf or azureml-pt.")],
    out: Annotated[Path | None, typer.Option(
        help="Output folder, or a file ending in .safetensors/.bin/.pt for a lone weights file. "
             "Default: the cache's converted/NAME/TO for a registered name, else beside the source.")] = None,
    dtype: Annotated[str, typer.Option(help="keep, fp32, fp16 or bf16.")] = "keep",
    from_format: Annotated[str | None, typer.Option(
        "--from-format", help="Source format when detection guesses wrong: tf1, tf2, safetensors, pt, hf, "
                              "azureml-pt, nvidia-pt.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    check: Annotated[bool | None, typer.Option(
        "--check/--no-check", help="Compare source and result as BertForPreTraining on a fixed batch "
                                   "(default: on when the layout or dtype changes).")] = None,
    config: Annotated[Path | None, typer.Option(
        help="config.json or bert_config.json for a bare weights file.")] = None,
    vocab: Annotated[Path | None, typer.Option(help="vocab.txt when none lies beside the source.")] = None,
    drop_heads: Annotated[bool, typer.Option(
        "--drop-heads", help="Write the encoder alone when the target cannot hold the MLM/NSP/finetuned "
                             "heads.")] = False,
    max_shard_size: Annotated[str | None, typer.Option(
        help="Split safetensors/pt weights into shards of at most this size, e.g. 2GB.")] = None,
) -> None:
    """Convert a BERT checkpoint between TF1, TF2 (read), safetensors, PyTorch, HF folders, AzureML and
    NVIDIA (read).

    \b
    Examples:
      bertvault convert uncased_L-12_H-768_A-12 --to hf
      bertvault convert ./bert_model.ckpt.index --to safetensors \\
          --out bert.safetensors
      bertvault convert ./pytorch_model.bin --to tf1 --vocab vocab.txt \\
          --config config.json
    """
    from bertvault import formats
    from bertvault.convert import convert
    from bertvault.errors import UsageError, raise_if
    from bertvault.formats.tensors import DTYPE_CHOICES

    problems = (_choice_problem("--to", to, formats.WRITABLE)
                + _choice_problem("--dtype", dtype, DTYPE_CHOICES)
                + _choice_problem("--from-format", from_format, list(formats.FORMATS)))
    shard_size = None
    if max_shard_size is not None:
        shard_size = _size_option(max_shard_size, "--max-shard-size", problems)
    raise_if(problems, UsageError)

    result = convert(source, to, out=out, dtype=dtype, from_format=from_format, force=force, check=check,
                     config=config, vocab=vocab, drop_heads=drop_heads, max_shard_size=shard_size)
    typer.echo(f"converted {result.source_format} -> {result.target_format}: {result.tensors} tensors, "
               f"{format_size(result.bytes)} in {result.seconds:.1f} s")
    typer.echo(f"  written: {result.out}")
    for reason, keys in result.dropped.items():
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        typer.echo(f"  dropped {len(keys)}: {reason} ({shown})")
    if result.heads:
        typer.echo(f"  heads: {', '.join(result.heads)}")
    if result.left_out:
        typer.echo(f"  not written (no place in {result.target_format}): {', '.join(result.left_out)}")
    typer.echo(f"  check: {result.check.line()}" if result.check else "  check: skipped")


@app.command()
def push(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="Registered name (from the cache) or a path: a file or folder.")],
    dest: Annotated[str, typer.Argument(metavar="DEST", help="gs://BUCKET/PREFIX or hf://ORG/REPO[@REVISION].")],
) -> None:
    """Upload a checkpoint or prepared data to a bucket or the Hugging Face Hub, verified.

    gs:// uploads are resumable (run the same command again after an interruption) and checked
    against the md5 and crc32c the server computed. hf:// uploads an HF folder (other formats are
    converted first) with a model card made from the manifest and the provenance record.
    Credentials: GOOGLE_OAUTH_ACCESS_TOKEN for buckets, HF_TOKEN for the Hub; STORAGE_EMULATOR_HOST
    and HF_ENDPOINT point at other endpoints.

    \b
    Examples:
      bertvault push runs/tf1 gs://my-bucket/bert/multi_cased_continued
      bertvault push runs/pretrain/final hf://me/my-domain-bert
    """
    from bertvault.push import push as push_

    result = push_(source, dest)
    typer.echo(f"pushed {len(result.files)} files ({format_size(result.bytes)}) to {result.destination}"
               + (f"\n{result.link}" if result.link else ""))


def main() -> None:
    # SIGTERM (`kill`, a scheduler's stop) acts as Ctrl-C for the whole command: exit 130 with every
    # output whole or absent. Code that stops more gently (training saves first) installs its own
    # handler meanwhile.
    global _AS_PROGRAM
    import signal

    _AS_PROGRAM = True
    signal.signal(signal.SIGTERM, _interrupt)
    # The cyclic garbage collector re-walks every object the imports made (typer's and pydantic's
    # schemas above all) on each pass, and once more at exit; frozen, they are skipped. A command
    # starts and ends about 60 ms sooner, and no object that is still in use is affected.
    gc.freeze()
    try:
        app()
    finally:
        _leaving()
        gc.freeze()
        # Only the interpreter's own exit is left, and it gives every Python handler back the default
        # action (death by signal): a signal that late is ignored instead, so the exit code stands.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    main()
