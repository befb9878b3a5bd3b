"""Keep numba's on-disk cache honest across edits of the package.

numba invalidates a cached function only when *its own* file changes, not
when a function it calls (inlined from arithmetic.py, say) does, so an edit
to the arithmetic could leave a stale kernel computing the old formula. On
import we hash the package's sources and, when they differ from the stamp
left by the last import, drop the package's cache files. Installed wheels
rarely need it (all files are new); editable installs and git pulls do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).parent
CACHE_DIR = PACKAGE / "__pycache__"
STAMP = CACHE_DIR / "rfsweep-sources.sha1"


def sources_digest() -> str:
    digest = hashlib.sha1()
    for path in sorted(PACKAGE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def drop_stale_cache() -> None:
    """Delete numba's index/data files here if any source changed since the last import."""
    try:
        digest = sources_digest()
        if STAMP.is_file() and STAMP.read_text() == digest:
            return
        for pattern in ("*.nbi", "*.nbc"):
            for path in CACHE_DIR.glob(pattern):
                path.unlink(missing_ok=True)
        CACHE_DIR.mkdir(exist_ok=True)
        STAMP.write_text(digest)
    except OSError:  # a read-only install: numba caches elsewhere, and files there are new
        pass
