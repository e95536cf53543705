"""The types VP values have, and the kinds of argument a builtin takes.

VP has integers and strings; aggregates and bags are names only.  A builtin's
parameter may also be an ADDRESS (an integer guest address, or a string that
names a guest symbol) or a FORMAT (a printf format string, followed by the
arguments its directives ask for).
"""

INT = "integer"
STR = "string"

ADDRESS = "address"
FORMAT = "format"
