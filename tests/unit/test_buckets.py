"""Bucket names, S3 URIs and the allowed-bucket match (pure)."""

from __future__ import annotations

import pytest

from studio_operator.resources.buckets import InvalidS3Uri, is_writable, normalise_bucket, parse_s3_uri


@pytest.mark.parametrize(
    ("ref", "bucket"),
    [
        ("data", "data"),
        ("s3://data", "data"),
        ("s3://data/", "data"),
        ("S3://data/", "data"),
        ("data/", "data"),
        ("  s3://data//  ", "data"),
        ("s3://data/private", "data/private"),  # not cut down to a broader bucket
    ],
)
def test_normalise_bucket(ref: str, bucket: str) -> None:
    assert normalise_bucket(ref) == bucket


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://reference-genomes", ("reference-genomes", "")),
        ("s3://reference-genomes/", ("reference-genomes", "")),
        ("s3://ref/hg38", ("ref", "hg38")),
        ("s3://ref/hg38/", ("ref", "hg38")),
        ("s3://ref//a//b/", ("ref", "a/b")),
        ("s3://ref/runs/2024-01_v(2)/a=b+c@d~e!", ("ref", "runs/2024-01_v(2)/a=b+c@d~e!")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "ref",
        "https://ref/x",
        "s3://",
        "s3://ab",
        "s3://Upper",
        "s3://a..b",
        "s3://192.168.1.1",
        "s3://ref/../x",
        # Characters a mount option could split at, or that shells treat specially.
        "s3://ref/p,allow-root",
        "s3://ref/x y",
        "s3://ref/a\tb",
        "s3://ref/it's",
        "s3://ref/$(id)",
        "s3://ref/a;b",
        "s3://ref/a*",
    ],
)
def test_parse_s3_uri_rejects(uri: str) -> None:
    with pytest.raises(InvalidS3Uri):
        parse_s3_uri(uri)


@pytest.mark.parametrize(
    ("bucket", "allowed", "writable"),
    [
        ("data", ["data"], True),
        ("data", ["s3://data/"], True),
        ("data", ["s3://data"], True),
        ("data", ["other", "data/"], True),
        ("data-private", ["data"], False),  # exact names only: no prefix matching
        ("data", ["data-private"], False),
        ("data", ["dat"], False),
        ("data", ["s3://data/sub"], False),
        ("data", [], False),
        ("data", None, False),
        ("", [""], False),
    ],
)
def test_is_writable(bucket: str, allowed: list[str] | None, writable: bool) -> None:
    assert is_writable(bucket, allowed) is writable
