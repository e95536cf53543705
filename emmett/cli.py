"""`emmettc`'s entry point: the click command of `command.py`, started with as little as can be.

    emmettc file.emt [-o out.vp]      # VP on standard output without -o (or with -o -)

This module is all the console script loads before the command: it is small,
because with PYTHONDONTWRITEBYTECODE set it is compiled from source on every
run, while `command.py` and the compiler come with their bytecode kept in the
cache (`cache.bytecode_cached`).  `command` is the click command itself
(for tests and completion), loaded on first use.
"""

import gc


def main(argv=None):
    gc.disable()  # until the compiler is imported: see command._resume_gc
    import click  # noqa: F401 - first, so that click's bytecode is read from where it was installed

    from .cache import bytecode_cached

    with bytecode_cached():
        from .command import command
    command.main(argv)


def __getattr__(name):
    if name == "command":
        from .command import command
        return command
    raise AttributeError(f"module 'emmett.cli' has no attribute {name!r}")


if __name__ == "__main__":
    main()
