"""Per-unit progress of a long measurement, so an interrupted bench resumes where it stopped.

A :class:`ProgressFile` is a JSON-lines file. Its first line holds the settings of the
measurement (``{"settings": {...}}``); every further line is one finished unit (a scene, a
trial): ``{"key": KEY, "record": {...}}``. A line is written and flushed (and ``fsync``-ed)
as soon as its unit is done, so a killed process loses at most the units in flight. A rerun
with the same settings skips the keys already there; with other settings it refuses, because
records of two settings must not be mixed. A last line cut short by a kill is ignored (and
overwritten by the next record). The final result is computed from the records, in the order
the caller asks for them, never from the order they were written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["ProgressFile"]


class ProgressFile:
    """``path``: the JSON-lines file (created with its folder); ``settings``: a JSON-ready
    mapping that must equal the file's (compared after a JSON round trip)."""

    def __init__(self, path: Path | str, settings: Mapping):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(dict(settings)))
        self.records: dict[str, dict] = {}
        if self.path.exists() and self.path.stat().st_size:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"settings": self.settings}) + "\n")

    def _load(self) -> None:
        raw = self.path.read_text()
        lines = raw.split("\n")
        good_end = 0  # characters of complete, parseable lines
        for i, line in enumerate(lines):
            complete = i < len(lines) - 1  # the last piece has no newline after it
            if not line.strip():
                good_end += len(line) + complete
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                if complete:
                    raise ValueError(f"{self.path}: line {i + 1} is not JSON (only a cut-off last line is tolerated)") from None
                break
            if i == 0:
                if "settings" not in item:
                    raise ValueError(f"{self.path}: the first line must hold the settings")
                if item["settings"] != self.settings:
                    diff = sorted(k for k in set(item["settings"]) | set(self.settings)
                                  if item["settings"].get(k) != self.settings.get(k))
                    raise ValueError(f"{self.path} holds records of other settings (differing: {', '.join(diff)}); "
                                     "use another progress file or delete this one")
            else:
                self.records[str(item["key"])] = item["record"]
            good_end += len(line) + complete
        if good_end < len(raw) or not raw.endswith("\n"):
            # drop a cut-off tail, and end the last complete record with its newline
            text = raw[:good_end]
            if text and not text.endswith("\n"):
                text += "\n"
            self.path.write_text(text)
        if not self.path.read_text():
            self.path.write_text(json.dumps({"settings": self.settings}) + "\n")

    def done(self, key) -> bool:
        return str(key) in self.records

    def missing(self, keys: Iterable) -> list:
        """The keys not finished yet, in the given order."""
        return [k for k in keys if not self.done(k)]

    def add(self, key, record: Mapping) -> None:
        """Append one finished unit (JSON-ready ``record``); a key already there is an error."""
        key = str(key)
        if key in self.records:
            raise ValueError(f"{self.path}: unit {key!r} is already recorded")
        rec = json.loads(json.dumps(dict(record)))
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": key, "record": rec}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[key] = rec

    def merge(self, other: Path | str, ignore: Iterable[str] = ("seconds",)) -> int:
        """Append the records of progress file ``other`` (same settings; e.g. written by a second
        process working from the other end) that this file lacks; returns how many. A key in both
        must hold the same record apart from the fields ``ignore`` (timings; this file's are kept):
        two records of one unit that differ otherwise are an error."""
        theirs = ProgressFile(other, self.settings)  # refuses other settings
        skip = set(ignore)
        for key, record in theirs.records.items():  # check every shared unit before writing any
            if key in self.records:
                mine = {k: v for k, v in self.records[key].items() if k not in skip}
                if mine != {k: v for k, v in record.items() if k not in skip}:
                    raise ValueError(f"{self.path} and {other} hold different records of unit {key!r}")
        new = [(key, record) for key, record in theirs.records.items() if key not in self.records]
        for key, record in new:
            self.add(key, record)
        return len(new)

    def get(self, keys: Iterable) -> list[dict]:
        """The records of ``keys``, in that order; a missing one is a KeyError naming it."""
        out = []
        for k in keys:
            if not self.done(k):
                raise KeyError(f"{self.path}: unit {k!r} is not recorded yet")
            out.append(self.records[str(k)])
        return out
