"""What a compiled script says about each of its aggregates, read for the printers.

Compiled Emmett carries one `;@aggr` record per aggregate (docs/architecture.md,
"Annotations in compiled VP"; `vp_runtime.annotations` reads them): the
header and kind of each key, whether every update is `++`, the value's
source text, and a histogram's buckets.  `AggregateInfo.of(record, int_keys,
str_keys)` checks a record against the aggregate's shape in the log and
gives None when it does not describe it, so a VP script without annotations
(or with a record this reader does not understand) keeps today's layout.

The printers find the info of a block by its name (`AggregateCatalog`), and
JSON lines carry it (`to_record`), so a printer reading `vprobe -f json`
output needs no script.
"""

from __future__ import annotations

from dataclasses import dataclass

# How a key's values are shown (the kinds the annotations name).
STRING, SYSCALL, ADDRESS, HEX, INTEGER, BUCKET = "string", "syscall", "address", "hex", "integer", "bucket"
INTEGER_KINDS = frozenset({SYSCALL, ADDRESS, HEX, INTEGER, BUCKET})
POW2, LINEAR = "pow2", "linear"
TOP = 2 ** 64  # the bound above every value: a bucket [TOP >> 1, TOP) or [max, TOP)


@dataclass(frozen=True)
class KeyInfo:
    header: str  # the key's Emmett source, e.g. `curprocname()`
    kind: str  # one of the kinds above


@dataclass(frozen=True)
class HistogramInfo:
    """A histogram's buckets: `pow2` (key 0 is [0, 1), key 2^k is [2^k, 2^(k+1))) or `linear` (key
    min + i*step is [min + i*step, min + (i+1)*step), key max is [max, 2^64) and, when min > 0,
    key 0 is [0, min)).  Each bucket key holds its bucket's lower bound."""

    kind: str
    bucket: int  # which key (index among the aggregate's keys) is the bucket
    min: int = 0
    max: int = 0
    step: int = 0
    unit: str = ""

    def bounds(self, key: int) -> tuple[int, int]:
        """[low, high) of the bucket whose key is `key`."""
        if self.kind == POW2:
            return key, (key * 2 if key else 1)
        if key >= self.max:
            return key, TOP
        if key < self.min:
            return 0, self.min
        return key, min(key + self.step, self.max)

    def following(self, key: int) -> int | None:
        """The key of the next bucket up, None after the last."""
        high = self.bounds(key)[1]
        return high if high < TOP else None

    def is_bucket(self, key: int) -> bool:
        """Whether `key` is one this histogram's buckets can have."""
        if self.kind == POW2:
            return key == 0 or key & (key - 1) == 0
        if key >= self.max:
            return key == self.max
        if key < self.min:
            return key == 0
        return (key - self.min) % self.step == 0

    def describe(self) -> str:
        if self.kind == POW2:
            return "power-of-two buckets"
        return f"linear buckets of {self.step} from {self.min} to {self.max}"


@dataclass(frozen=True)
class AggregateInfo:
    """What the script says about one aggregate (see the module's description)."""

    keys: tuple[KeyInfo, ...]  # in the log's order: integer keys, then string keys
    counted: bool = False  # every update is ++: each value is 1
    value: str = ""  # the source text of the value added, when every update adds the same
    histogram: HistogramInfo | None = None

    @classmethod
    def of(cls, record: object, int_keys: int, str_keys: int) -> "AggregateInfo | None":
        """The info a `;@aggr` record gives for an aggregate of this shape, or None."""
        if not isinstance(record, dict):
            return None
        keys = record.get("keys")
        if not isinstance(keys, list) or len(keys) != int_keys + str_keys:
            return None
        infos = []
        for i, key in enumerate(keys):
            if not isinstance(key, dict) or not isinstance(key.get("header"), str):
                return None
            kind = key.get("kind")
            if kind not in (INTEGER_KINDS if i < int_keys else {STRING}):
                kind = INTEGER if i < int_keys else STRING
            infos.append(KeyInfo(key["header"], kind))
        value = record.get("value")
        return cls(tuple(infos), record.get("counted") is True, value if isinstance(value, str) else "",
                   _histogram(record.get("hist"), int_keys))

    def to_record(self) -> dict:
        """This info as a `;@aggr` record (what JSON lines carry)."""
        record: dict = {"keys": [{"header": k.header, "kind": k.kind} for k in self.keys], "counted": self.counted}
        if self.value:
            record["value"] = self.value
        h = self.histogram
        if h is not None:
            record["hist"] = {"kind": h.kind, "bucket": h.bucket, **({"min": h.min, "max": h.max, "step": h.step}
                                                                      if h.kind == LINEAR else {}),
                              **({"unit": h.unit} if h.unit else {})}
        return record


def _histogram(hist: object, int_keys: int) -> HistogramInfo | None:
    if not isinstance(hist, dict):
        return None
    bucket = hist.get("bucket")
    if not isinstance(bucket, int) or isinstance(bucket, bool) or not 0 <= bucket < int_keys:
        return None
    unit = hist.get("unit") if isinstance(hist.get("unit"), str) else ""
    if hist.get("kind") == POW2:
        return HistogramInfo(POW2, bucket, unit=unit)
    if hist.get("kind") != LINEAR:
        return None
    low, high, step = (hist.get(k) for k in ("min", "max", "step"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, step)):
        return None
    if not (0 <= low < high < TOP and step > 0):
        return None
    return HistogramInfo(LINEAR, bucket, low, high, step, unit)


class AggregateCatalog:
    """The `;@aggr` records of a script, by aggregate name (empty for a script without them)."""

    def __init__(self, records: dict[str, dict] | None = None):
        self.records = dict(records or {})

    @classmethod
    def of_vp(cls, vp_text: bytes | str) -> "AggregateCatalog":
        """The records in a VP text's annotations."""
        from vp_runtime import annotations_of

        return cls(annotations_of(vp_text).aggregates)

    def info(self, name: str, int_keys: int, str_keys: int) -> AggregateInfo | None:
        """The info of the aggregate `name`; a fleet's table of one VM, `NAME@VM`, is NAME's (an
        aggregate's own name has no `@`)."""
        record = self.records.get(name)
        if record is None and "@" in name:
            record = self.records.get(name.split("@", 1)[0])
        return AggregateInfo.of(record, int_keys, str_keys)

    def has_kind(self, kind: str) -> bool:
        """Whether some aggregate has a key of `kind` (system call names are fetched only then)."""
        return any(isinstance(key, dict) and key.get("kind") == kind
                   for record in self.records.values() if isinstance(record.get("keys"), list)
                   for key in record["keys"])
