"""What every suite of registered Model Garden experiments shares: paper settings with ``_tiny`` twins,
their names, the command that runs one, and idempotent registration with ``exp_factory``."""

from __future__ import annotations

from typing import Callable, Iterable

from official.core import exp_factory

TINY_SUFFIX = "_tiny"


def command(name: str, model_dir: str | None = None) -> str:
    """The shell command that runs experiment ``name`` (train and eval)."""
    return f"evonorm-train --experiment={name} --mode=train_and_eval --model_dir={model_dir or '/tmp/evonorm/' + name}"


def with_twins(names: Iterable[str], tiny: bool | None = None) -> list:
    """``names`` and their ``_tiny`` twins (``tiny=None``), the twins only (True) or the names only (False)."""
    base = list(names)
    twins = [n + TINY_SUFFIX for n in base]
    return base + twins if tiny is None else (twins if tiny else base)


def register_with_twins(names: Iterable[str], make_factory: Callable[[str, bool], Callable]) -> None:
    """Registers ``make_factory(name, tiny)`` under every name and its twin; names already registered
    are left alone, so a re-import or reload does not raise."""
    for name in names:
        for tiny in (False, True):
            full = name + (TINY_SUFFIX if tiny else "")
            if full not in exp_factory._REGISTERED_CONFIGS:  # noqa: SLF001 - the registry is a plain dict
                exp_factory.register_config_factory(full)(make_factory(name, tiny))
