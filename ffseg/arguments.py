"""Argument types shared by the command-line parsers (`ffseg` and its subcommands).

Each turns one command-line word into a value or raises
`argparse.ArgumentTypeError` with a message that says what was expected, which
argparse prints as the one usage-error line.
"""

import argparse


def integer(minimum=None, maximum=None, *, what: str = "an integer"):
    """An argparse type: an integer in [minimum, maximum] (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if maximum is not None and minimum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be in {minimum}..{maximum}, got {value}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


positive = integer(1, what="a positive integer")
count = integer(0, what="an integer >= 0")
port = integer(0, 65535, what="a port number")


def positive_or_all(text: str):
    """A positive integer, or "all" (None: no limit)."""
    if text.strip().lower() == "all":
        return None
    try:
        return positive(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} (or 'all')") from None


def probability(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value
