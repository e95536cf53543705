"""The record type the spec's tables are made of.

A record is read-only; its fields are its class's `__slots__`, given in
order or by name, and `defaults` holds the values of fields that may be left
out.  (Lighter to create than a namedtuple or a dataclass, which matters: the
compiler imports the spec at every start.)
"""


class Record:
    __slots__ = ()
    defaults: dict = {}

    def __init__(self, *values, **named):
        fields = type(self).__slots__
        if len(values) > len(fields) or not named.keys() <= set(fields[len(values):]):
            raise TypeError(f"{type(self).__name__} has the fields {', '.join(fields)}")
        for field, value in zip(fields, values):
            object.__setattr__(self, field, value)
        for field in fields[len(values):]:
            if field in named:
                object.__setattr__(self, field, named[field])
            elif field in self.defaults:
                object.__setattr__(self, field, self.defaults[field])
            else:
                raise TypeError(f"{type(self).__name__} needs its field '{field}'")

    def __setattr__(self, name, value):
        raise AttributeError(f"a {type(self).__name__} is read-only")

    def replace(self, **changes):
        """A copy with some fields changed."""
        return type(self)(**{f: changes.get(f, getattr(self, f)) for f in type(self).__slots__})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in type(self).__slots__)})"
