"""The errors a person can meet and act on: the only exceptions the CLI turns into one line.

Everything else is a bug and keeps its traceback. Each message is one lowercase line that
names the file or option at fault and says what to do next (rclip's style: "raise or disable
it with --max-image-megapixels").
"""

from __future__ import annotations

from pathlib import Path


class ImgretError(Exception):
    """Base of every user-facing error; ``exit_code`` is what the CLI returns for it."""

    exit_code = 1


class BadInputError(ImgretError, ValueError):
    """An option, query, notes file or annotation file that cannot be used as given."""


class ImgretIndexError(ImgretError):
    """Base of the errors about the index on disk."""


class IndexNotFoundError(ImgretIndexError, FileNotFoundError):
    """No index where one was expected (or the file holds no tables yet)."""


class IndexFormatError(ImgretIndexError):
    """The file is not an imgret index, or one of a format this release cannot read."""


class IndexDamagedError(ImgretIndexError):
    """The index file is damaged: a malformed page, a lost table, an unreadable meta entry."""


class IndexWriteError(ImgretIndexError):
    """The index is fine but cannot be written: read-only, full disk, no such folder.

    Its messages never suggest deleting anything: the index is good, the place is not.
    """


class IndexBusyError(ImgretIndexError):
    """Another process holds the index's writer lock."""


class EmptyIndexError(ImgretIndexError):
    """The index holds nothing to search yet."""


class GalleryMismatchError(ImgretIndexError):
    """The index belongs to another gallery folder."""


class BadImageError(ImgretError, ValueError):
    """A file that cannot be used as an image; builds skip and list such files.

    ``reason`` says why in a few words, for the build's list of skipped files.
    """

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ModelUnavailableError(ImgretError, RuntimeError):
    """A model's weights are neither on disk nor reachable, or an optional package is missing."""

    exit_code = 2


class UnsafeWeightsError(ModelUnavailableError):
    """A weights file that only a full unpickling could load: it may run code, so it is refused.

    Weights load with ``torch.load(weights_only=True)`` (tensors and known model classes
    only); a file that needs more was made by other code or was tampered with.
    """


class MissingFileError(BadInputError, FileNotFoundError):
    """A file or folder the person named does not exist or cannot be read."""


class MissingPackageError(ImgretError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra."""

    exit_code = 2


def escape_controls(text: str) -> str:
    """``text`` with every character that does not print written as its escape (``\\n``,
    ``\\x1e``): a message naming a user's file or folder stays one line."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )
