"""Where bertvault keeps things, and the environment variables that move them.

Every environment variable bertvault reads is listed in ENVIRONMENT (the README's table mirrors it).
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT: dict[str, str] = {
    "BERTVAULT_HOME": "cache root (blobs, artifact views, partial downloads); "
    "default $XDG_CACHE_HOME/bertvault or ~/.cache/bertvault",
    "BERTVAULT_MANIFESTS": "colon-separated manifest files or folders (every *.toml) added to the registry",
    "BERTVAULT_OFFLINE": "1 = make no network request; serve from the cache or fail",
    "XDG_CACHE_HOME": "default parent of the cache root",
    "XDG_CONFIG_HOME": "parent of bertvault/manifests/, the user's own manifests (default ~/.config)",
    "HF_ENDPOINT": "Hugging Face Hub endpoint for hf:// sources",
    "HF_TOKEN": "Hugging Face token for gated or private hf:// repositories",
    "HF_HUB_OFFLINE": "1 = no requests to the Hub",
    "HF_HOME": "huggingface_hub's home: hf:// files already in its cache are copied from it, with no request",
    "STORAGE_EMULATOR_HOST": "Google Cloud Storage endpoint for gs:// (an emulator such as fake-gcs-server)",
    "GOOGLE_OAUTH_ACCESS_TOKEN": "a bearer token for every gs:// request (`gcloud auth print-access-token`)",
    "GOOGLE_APPLICATION_CREDENTIALS": "a service-account key file for gs:// (Application Default "
                                      "Credentials)",
    "CLOUDSDK_CONFIG": "gcloud's folder, where `gcloud auth application-default login` leaves user "
                       "credentials",
    "GCE_METADATA_HOST": "the metadata server of a Google Cloud VM (credentials of its service account)",
}

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    """A top-level data folder: inside the package in an installed wheel, else in the checkout."""
    installed = _PACKAGE / "_data" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


def builtin_manifests_dir() -> Path:
    return _data_dir("manifests")


def converters_dir() -> Path:
    return _data_dir("converters")


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def home() -> Path:
    """The cache root: $BERTVAULT_HOME, else $XDG_CACHE_HOME/bertvault, else ~/.cache/bertvault."""
    value = os.environ.get("BERTVAULT_HOME")
    return Path(value).expanduser() if value else _xdg("XDG_CACHE_HOME", ".cache") / "bertvault"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "bertvault"


def user_manifests_dir() -> Path:
    return config_dir() / "manifests"


def default_user_manifest() -> Path:
    """The file `bertvault add` appends to."""
    return user_manifests_dir() / "user.toml"


def user_manifest_sources() -> list[Path]:
    """$BERTVAULT_MANIFESTS entries (files or folders), then the user's config folder."""
    sources = [Path(p).expanduser() for p in os.environ.get("BERTVAULT_MANIFESTS", "").split(":") if p]
    sources.append(user_manifests_dir())
    return sources


def offline() -> bool:
    return os.environ.get("BERTVAULT_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
