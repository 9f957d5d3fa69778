#!/usr/bin/env python3
"""Build the kubectl plugin's krew archive and point plugins/krew/studio.yaml at it.

    python hack/krew_archive.py [--out dist] [--write]

The archive (kubectl-studio.tar.gz) holds `kubectl-studio`, a Python zip application of the
plugin (studio_operator without the operator-only modules), and LICENSE-free README text. It is
built reproducibly (fixed timestamps, sorted entries), so the same sources give the same sha256.
`--write` puts that sha256 and the version into the manifest; upload the archive as the release
asset the manifest's `uri` names. The zipapp needs python3 >= 3.11 with the `[cli]` requirements
(kubernetes, pydantic, pyyaml), as the manifest's caveats say.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "operator" / "studio_operator"
MANIFEST = ROOT / "plugins" / "krew" / "studio.yaml"
# the plugin's modules: its own package and the pure API/resources code it shares with the operator
INCLUDED = ("__init__.py", "py.typed", "api/", "resources/", "cli/")
EPOCH = (2020, 1, 1, 0, 0, 0)
README = b"""kubectl studio: drive studios (studios.dev) from the command line.
Needs python3 >= 3.11 with: pip install 'studio-operator[cli]' (or kubernetes, pydantic, pyyaml).
Run `kubectl studio --help`.
"""


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def zipapp() -> bytes:
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        files = sorted(
            p
            for p in PACKAGE.rglob("*")
            if p.is_file()
            and "__pycache__" not in p.parts
            and str(p.relative_to(PACKAGE)).startswith(INCLUDED)
        )
        for path in files:
            info = zipfile.ZipInfo(f"studio_operator/{path.relative_to(PACKAGE)}", EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
        main = zipfile.ZipInfo("__main__.py", EPOCH)
        zf.writestr(main, b"from studio_operator.cli.main import main\nraise SystemExit(main())\n")
    return buf.getvalue()


def archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in (("kubectl-studio", zipapp(), 0o755), ("README.txt", README, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "dist"), help="directory for kubectl-studio.tar.gz")
    parser.add_argument("--write", action="store_true", help="update plugins/krew/studio.yaml")
    args = parser.parse_args(argv)
    data = archive()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kubectl-studio.tar.gz").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    print(f"{out / 'kubectl-studio.tar.gz'}  sha256 {digest}")
    if args.write:
        text = MANIFEST.read_text()
        text = re.sub(r"sha256: [0-9a-f]{64}", f"sha256: {digest}", text)
        text = re.sub(r"(?m)^  version: v\S+", f"  version: v{version()}", text)
        text = re.sub(r"/download/v[^/]+/", f"/download/v{version()}/", text)
        MANIFEST.write_text(text)
        print(f"updated {MANIFEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
