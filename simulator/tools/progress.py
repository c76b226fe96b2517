"""Progress bars on stderr (tqdm), shown only when asked for, i.e. when stderr is a terminal."""

from __future__ import annotations

import sys


def progress_bar(total: int, unit: str, enabled: bool):
    """Return a tqdm bar counting ``total`` ``unit``s on stderr (rate and ETA), or None when not
    ``enabled``. tqdm is imported only when a bar is drawn; call ``close()`` when done."""
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)
