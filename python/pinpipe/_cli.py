"""The ``pinpipe`` command of the wheel: the Rust CLI, from the same code as the native binary."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    from pinpipe import _core

    # The command handles Ctrl-C and SIGTERM itself, as the native binary does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_core.cli_main(["pinpipe", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
