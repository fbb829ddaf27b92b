"""The command line: parse, call one library function, print, map known errors to exit codes.

Heavy libraries (torch, TensorFlow, transformers) are imported inside the commands that need them,
so `bertvault list` starts about as fast as the interpreter.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

# pydantic scans every installed distribution for plugins when the first model class is built
# (importlib.metadata, ~30 ms); the manifest schema uses none, and `list` must start fast.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer  # noqa: E402

from bertvault import __version__  # noqa: E402
from bertvault.errors import BertvaultError  # noqa: E402

log = logging.getLogger("bertvault")


class _Guarded(typer.Typer):
    """A Typer whose commands turn BertvaultError into one line on stderr and its exit code."""

    def command(self, *args: Any, **kwargs: Any) -> Callable:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def guarded(*a: Any, **kw: Any) -> Any:
                try:
                    return fn(*a, **kw)
                except BertvaultError as exc:
                    if _debug():
                        raise
                    typer.echo(f"error: {exc}", err=True)
                    raise typer.Exit(exc.exit_code) from None
                except KeyboardInterrupt:
                    typer.echo("interrupted", err=True)
                    raise typer.Exit(130) from None

            register(guarded)
            return fn

        return decorator


def _debug() -> bool:
    return os.environ.get("BERTVAULT_DEBUG", "") not in ("", "0")


def _app(help: str, **kwargs: Any) -> _Guarded:
    return _Guarded(help=help, no_args_is_help=True, pretty_exceptions_enable=False, **kwargs)


app = _app(
    "bertvault: the registry, downloader, converter and trainer for published BERT checkpoints and data.\n\n"
    "Examples:\n\n"
    "  bertvault list --kind checkpoint\n\n"
    "  bertvault info multi_cased",
    rich_markup_mode=None,
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

    console = Console()
    if not console.is_terminal:  # pipes and logs get full rows instead of 80-column wrapping
        console.width = max(console.width, 160)
    return console


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"


def _registry():
    from bertvault.registry import load_registry

    return load_registry()


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option(help="Only this kind: checkpoint or dataset.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Only this format, e.g. tf1-checkpoint.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every registered artifact.

    Examples: `bertvault list`, `bertvault list --kind dataset`, `bertvault list --format tf1-checkpoint --json`
    """
    from bertvault.errors import ManifestError
    from bertvault.registry import FORMATS

    problems = []
    if kind not in (None, "checkpoint", "dataset"):
        problems.append(f"--kind must be checkpoint or dataset, got {kind!r}")
    if format is not None and format not in FORMATS:
        problems.append(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if problems:
        raise ManifestError(problems)

    from bertvault.registry.describe import select

    rows = select(_registry(), kind, format)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} artifacts", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("kind", "format", "architecture", "size", "pinned", "cached"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = row["name"] + (" (user)" if row["user_override"] or not row["builtin"] else "")
        table.add_row(
            name, row["kind"], row["format"], row["architecture"] or "",
            _size(row["size"]), row["pinned"], "yes" if row["cached"] else "",
        )
    _console().print(table)


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="Artifact name or alias.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Everything about one artifact: files, mirrors, hashes, what it needs and what it equals.

    Examples: `bertvault info multi_cased`, `bertvault info bert-large-original --json`
    """
    from bertvault.registry.describe import details

    data = details(_registry(), name)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{escape(data['name'])}[/] ({data['kind']}, {data['format']})")
    console.print(escape(data["description"]))
    facts = {
        "aliases": ", ".join(data["aliases"]),
        "architecture": data["architecture"] and ", ".join(f"{k}={v}" for k, v in data["architecture"].items()),
        "publisher": data["publisher"],
        "homepage": data["homepage"],
        "license": data["license"],
        "vocab from": data["vocab_from"],
        "same weights as": ", ".join(data["same_weights_as"]),
        "size": _size(data["size"]),
        "pinned": data["pinned"],
        "cached": "yes" if data["cached"] else "no",
        "cache folder": data["cache_dir"],
        "manifest": data["manifest"] + (" (user override)" if data["user_override"] else ""),
    }
    for key, value in facts.items():
        if value:
            console.print(f"  {key:16} {escape(str(value))}")
    table = Table(title="files", title_justify="left")
    for column in ("path", "size", "sha256", "mirrors"):
        table.add_column(column, overflow="fold")
    for f in data["files"]:
        path = f["path"] + (" (optional)" if f.get("optional") else "") + (f" [{f['archive']}]" if f.get("archive") else "")
        table.add_row(escape(path), _size(f.get("size")), f.get("sha256", "not pinned"), "\n".join(f["urls"]))
    console.print(table)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Name of the new artifact.")],
    urls: Annotated[list[str], typer.Argument(help="File URLs; URLs with the same file name are mirrors.")],
    kind: Annotated[str, typer.Option(help="checkpoint or dataset.")] = "checkpoint",
    format: Annotated[str, typer.Option("--format", help="Format, e.g. hf-safetensors, tf1-checkpoint.")] = "hf-safetensors",
    sha256: Annotated[list[str] | None, typer.Option("--sha256", help="sha256 of each file, in order.")] = None,
    alias: Annotated[list[str] | None, typer.Option("--alias", help="Another name for it (repeatable).")] = None,
    arch: Annotated[
        str | None, typer.Option(help="Checkpoints: LAYERS-HIDDEN-HEADS[-VOCAB][-cased], e.g. 12-768-12-30522.")
    ] = None,
    vocab_from: Annotated[str | None, typer.Option(help="Artifact whose vocab.txt this one uses.")] = None,
    description: Annotated[str, typer.Option(help="One line about it.")] = "",
    manifest: Annotated[
        Path | None, typer.Option(help="Manifest to append to (default: the user manifest).")
    ] = None,
) -> None:
    """Append an artifact to your user manifest.

    Example: `bertvault add my-bert https://example.org/my-bert.zip --format tf1-checkpoint --arch 12-768-12-30522`
    """
    from bertvault import paths
    from bertvault.registry.user import add_artifact, build_table

    table = build_table(name, urls, kind=kind, fmt=format, sha256=sha256 or [], aliases=alias or [],
                        arch=arch, vocab_from=vocab_from, description=description)
    target = manifest or paths.default_user_manifest()
    artifact = add_artifact(target, table)
    typer.echo(f"added {artifact.name} ({len(artifact.files)} files) to {target}")


@manifest_app.command("validate")
def manifest_validate(
    files: Annotated[list[Path], typer.Argument(help="Manifest files to check.")],
) -> None:
    """Check manifest files: TOML syntax, schema, and no clash with the built-in names.

    Example: `bertvault manifest validate ~/.config/bertvault/manifests/*.toml`
    """
    from bertvault.registry.user import validate_files

    for file, count in validate_files(files).items():
        typer.echo(f"ok: {file} ({count} artifacts)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
