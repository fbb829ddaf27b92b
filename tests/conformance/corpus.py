"""Real documentation text for the pretraining-data checks: the docstrings of Python's standard library
(a document per module: its docstring and those of its classes and functions, one sentence per line).
About 70 documents from 2 to 600 sentences and 10,000 distinct words: the mix of a few very long
documents and many short ones that makes example counts swing from seed to seed."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

MODULES = (
    "argparse", "asyncio.events", "base64", "bisect", "calendar", "collections", "configparser", "contextlib",
    "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fractions", "ftplib",
    "functools", "getopt", "gettext", "glob", "gzip", "heapq", "hmac", "html.parser", "http.client",
    "http.cookiejar", "imaplib", "inspect", "ipaddress", "json", "logging", "mailbox", "mimetypes", "netrc",
    "numbers", "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets",
    "shlex", "shutil", "smtplib", "socketserver", "statistics", "string", "subprocess", "tarfile", "tempfile",
    "textwrap", "threading", "timeit", "tokenize", "traceback", "typing", "unittest.case", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "zipfile",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _sentences(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    texts = [inspect.getdoc(module) or ""]
    for _, member in sorted(vars(module).items()):
        if (inspect.isclass(member) or inspect.isfunction(member)) and member.__module__ == module_name:
            texts.append(inspect.getdoc(member) or "")
    sentences = []
    for text in texts:
        for paragraph in re.split(r"\n\s*\n", text):
            flat = " ".join(paragraph.split())
            sentences += [s for s in _SENTENCE_END.split(flat) if len(s.split()) >= 3]
    return sentences


def documents(modules: tuple[str, ...] = MODULES) -> list[list[str]]:
    return [doc for doc in map(_sentences, modules) if doc]


def write(path: Path, docs: list[list[str]]) -> Path:
    """google's layout: one sentence per line, a blank line between documents."""
    path.write_text("\n\n".join("\n".join(doc) for doc in docs) + "\n", encoding="utf-8")
    return path
