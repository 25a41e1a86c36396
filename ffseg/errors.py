"""One error for "this file, this reason".

Every input that cannot be used (a missing or corrupt video, a file that is
no image, a video without a face) raises a subclass of `FileError`, whose
message is `"<path>: <reason>"`: the one line that `ffseg detect`, the
dataset builders' reports and the evaluation print.
"""

import os


class FileError(Exception):
    """A file that cannot be used, and why.

    Args:
        path: the file, as given by the caller (`None` when the data did not
            come from a file).
        reason: what was wrong with it, in plain words.
    """

    def __init__(self, path, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(reason if self.path is None else f"{self.path}: {reason}")

    def __reduce__(self):
        # Exceptions cross process boundaries in Beam; the default reduce
        # would call __init__ with the formatted message as its only argument.
        return (type(self), (self.path, self.reason))
