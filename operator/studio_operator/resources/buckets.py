"""S3 names (pure): parse `s3://bucket/prefix`, normalise bucket references, decide write access."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..api.common import BUCKET_NAME, ENDPOINT_URL, S3_PREFIX_CHARS

_BUCKET_RE = re.compile(BUCKET_NAME)
_PREFIX_RE = re.compile(f"^[{S3_PREFIX_CHARS}]*$")
_ENDPOINT_RE = re.compile(ENDPOINT_URL)
_IP_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
SCHEME = "s3://"


class InvalidS3Uri(ValueError):
    """Not `s3://bucket` or `s3://bucket/prefix` with a valid bucket name."""


def normalise_bucket(ref: str) -> str:
    """`s3://data/`, `data/` and `data` all name bucket `data`.

    Nothing else is changed (no lower-casing, no cutting at an inner slash): a reference that is
    not exactly a bucket name must match no bucket rather than a broader one.
    """
    text = ref.strip()
    if text[: len(SCHEME)].lower() == SCHEME:
        text = text[len(SCHEME) :]
    return text.strip("/")


def is_valid_bucket(name: str) -> bool:
    return bool(_BUCKET_RE.match(name)) and ".." not in name and not _IP_LIKE.match(name)


def is_safe_prefix(prefix: str) -> bool:
    """Only characters that cannot end or start a mount option (no ',', whitespace or quotes)."""
    return bool(_PREFIX_RE.match(prefix))


def is_safe_endpoint(url: str) -> bool:
    """http(s)://host[:port][/path] with nothing a mount option or a shell could split."""
    return bool(_ENDPOINT_RE.match(url))


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> (`bucket`, `some/prefix`); the prefix has no outer slashes."""
    text = uri.strip()
    if not text.startswith(SCHEME):
        raise InvalidS3Uri(f"{uri!r} is not an S3 URI: write s3://bucket or s3://bucket/prefix")
    bucket, _, rest = text[len(SCHEME) :].partition("/")
    if not is_valid_bucket(bucket):
        raise InvalidS3Uri(
            f"{bucket!r} is not a valid bucket name (3-63 characters: lowercase letters, digits, '.' and '-')"
        )
    if not is_safe_prefix(rest):
        raise InvalidS3Uri(
            f"{uri!r}: the prefix may contain only letters, digits and / ! _ . ( ) = + @ ~ - "
            "(no commas, spaces or quotes)"
        )
    parts = [p for p in rest.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise InvalidS3Uri(f"{uri!r}: the prefix may not contain '.' or '..' segments")
    return bucket, "/".join(parts)


def is_writable(bucket: str, allowed_buckets: Iterable[str] | None) -> bool:
    """Exact bucket-name match after normalising: `data` never allows `data-private`."""
    target = normalise_bucket(bucket)
    return bool(target) and any(normalise_bucket(ref) == target for ref in allowed_buckets or ())
