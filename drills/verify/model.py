"""The vocabulary every check speaks."""

from enum import StrEnum

from pydantic import BaseModel


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


class Tier(StrEnum):
    QUICK = "quick"  # seconds, independent of data size
    STANDARD = "standard"  # one pass over the data
    DEEP = "deep"  # standard + pg_amcheck over heap and B-tree indexes


class CheckResult(BaseModel):
    name: str
    status: Status
    detail: str
    seconds: float
