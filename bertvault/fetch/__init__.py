"""Downloading artifacts: transports per URL scheme, a resumable multi-connection engine that hashes
bytes as they land, verification against every known digest, safe archive extraction, and the pull,
verify and pin operations built on them."""
