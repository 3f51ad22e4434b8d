"""Writes of the accounts app."""

from pathlib import Path

from instances.models import Instance, new_token_key


def import_token_key(*, instance: Instance, path: Path) -> None:
    """Adopt an upstream key file (`/var/lib/fatbuildr/tokens/<instance>/key`) as the instance key.

    Upstream uses the file text as is as the HMAC secret; so do we.
    """
    try:
        key = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read key file {path}: {error}") from error
    if len(key) < 32:
        raise ValueError(f"key file {path} holds {len(key)} characters; at least 32 are required")
    instance.token_key = key
    instance.save(update_fields=["token_key", "updated_at"])


def rotate_token_key(*, instance: Instance) -> None:
    """Replace the instance key with a new random one, revoking every token issued so far."""
    instance.token_key = new_token_key()
    instance.save(update_fields=["token_key", "updated_at"])
