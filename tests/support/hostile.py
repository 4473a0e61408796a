"""Files an attacker would hand imgret: weights whose unpickling runs code.

The code they carry only writes a marker file, so a test can tell whether it ran.
"""

from __future__ import annotations

from pathlib import Path


class RunsCode:
    """Unpickled in full, this object runs ``exec`` on a line that writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('the pickle ran')",))


def code_running_weights(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file shaped like a checkpoint whose loading in full writes ``marker``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": RunsCode(marker), "state_dict": {}}, path)
    return path
