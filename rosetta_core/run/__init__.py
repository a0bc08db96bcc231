"""A mining run: its configuration (:class:`MineConfig`) and the :class:`Run` that owns its
location, store keys and validation. The steps that fill a run, each a pure function that a
Prefect task wraps, live in :mod:`.extraction` (prepare, generate, extract), :mod:`.statistics`
(pair statistics) and :mod:`.outputs` (dictionary, manifest); they load models (torch), so
they are imported from there, keeping ``Run`` light for readers such as the report."""

from .config import DEFAULT_ENCODERS, MineConfig
from .plan import RunPlan, plan_run
from .run import NULL_TAG, Run
from .store import StoreMismatch

__all__ = ["DEFAULT_ENCODERS", "NULL_TAG", "MineConfig", "Run", "RunPlan", "StoreMismatch", "plan_run"]
