"""`emmettc`: the Emmett compiler's command line.

The compiler itself is not written yet; until it is, the command says so
and exits with status 2 so that no build mistakes it for a success.
"""

import sys


def main() -> None:
    print("emmettc: the Emmett compiler is not available yet", file=sys.stderr)
    sys.exit(2)
