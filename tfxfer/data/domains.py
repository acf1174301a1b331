"""Domain pairs as data: source and target splits with real shifts, from the packaged data sets.

* ELPV solar cells by module type: ``elpv_mono_to_poly`` and ``elpv_poly_to_mono`` (the cell
  type is the domain; same two classes, functional / defective).
* Human-rated sentiment snippets by source: ``sentiment_movies_to_tweets``,
  ``sentiment_movies_to_amazon``, ``sentiment_movies_to_nyt`` (same negative / positive labels).

Each `DomainPair` keeps the data sets' fixed train / val / test splits (`tfxfer.data.load`), split
again by domain: train on ``source_train``, adapt with the *inputs* of ``target_train`` (its labels
are there for scoring and for a target-oracle baseline only), select on ``source_val``, and score on
``target_test``. ``audit_test`` / ``audit_groups`` hold both domains' test examples with the domain
as a group column, ready for `tfxfer.fairness.group_metrics`.

Example:
    >>> from tfxfer.data.domains import domain_pair, list_domain_pairs
    >>> list_domain_pairs()[:2]
    ['elpv_mono_to_poly', 'elpv_poly_to_mono']
    >>> pair = domain_pair("sentiment_movies_to_tweets")  # doctest: +SKIP
    >>> pair.source_domain, pair.target_domain, len(pair.target_test.y)  # doctest: +SKIP
    ('movies', 'tweets', 420)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfxfer.data.registry import load
from tfxfer.data.result import Split
from tfxfer.errors import ArgumentTypeError, UnknownNameError

SPLITS = ("train", "val", "test")

#: name -> (kind, source domain, target domain)
_PAIRS = {
    "elpv_mono_to_poly": ("elpv", "mono", "poly"),
    "elpv_poly_to_mono": ("elpv", "poly", "mono"),
    "sentiment_movies_to_tweets": ("sentiment", "movies", "tweets"),
    "sentiment_movies_to_amazon": ("sentiment", "movies", "amazon"),
    "sentiment_movies_to_nyt": ("sentiment", "movies", "nyt"),
}


@dataclasses.dataclass
class DomainPair:
    """Source and target splits of one shift (see the module docstring for what each is for)."""

    name: str
    source_domain: str
    target_domain: str
    class_names: list
    source_train: Split
    source_val: Split
    source_test: Split
    target_train: Split
    target_val: Split
    target_test: Split
    licence: str

    @property
    def audit_test(self) -> Split:
        """Both domains' test examples (source first), for a bias audit by domain."""
        return Split(np.concatenate([self.source_test.x, self.target_test.x]),
                     np.concatenate([self.source_test.y, self.target_test.y]))

    @property
    def audit_groups(self) -> np.ndarray:
        """The domain of each `audit_test` example (e.g. "mono" / "poly")."""
        return np.array([self.source_domain] * len(self.source_test.y) + [self.target_domain] * len(self.target_test.y))

    def sizes(self) -> dict:
        return {f"{side}_{s}": len(getattr(self, f"{side}_{s}").y) for side in ("source", "target") for s in SPLITS}

    def __repr__(self) -> str:
        return f"DomainPair({self.name!r}, {self.source_domain} -> {self.target_domain}, sizes={self.sizes()})"


def list_domain_pairs() -> list[str]:
    """Names of the packaged domain pairs."""
    return list(_PAIRS)


def _subset(split: Split, mask: np.ndarray) -> Split:
    return Split(split.x[mask], split.y[mask])


def _elpv_pair(name: str, source: str, target: str) -> DomainPair:
    data = load("elpv")
    parts = {}
    for s in SPLITS:
        types = np.asarray(data.extras[s]["module_type"])
        parts[f"source_{s}"] = _subset(getattr(data, s), types == source)
        parts[f"target_{s}"] = _subset(getattr(data, s), types == target)
    return DomainPair(name, source, target, list(data.class_names), licence=data.licence, **parts)


def _sentiment_pair(name: str, source: str, target: str) -> DomainPair:
    src, tgt = load(f"sentiment_{source}"), load(f"sentiment_{target}")
    parts = {f"source_{s}": getattr(src, s) for s in SPLITS}
    parts.update({f"target_{s}": getattr(tgt, s) for s in SPLITS})
    licence = src.licence if src.licence == tgt.licence else f"{src.licence}; {tgt.licence}"
    return DomainPair(name, source, target, list(src.class_names), licence=licence, **parts)


def domain_pair(name: str) -> DomainPair:
    """Load the source and target splits of one packaged domain pair.

    Args:
        name: one of `list_domain_pairs()`.

    Raises:
        UnknownNameError: an unknown pair (close matches listed).
        MissingDependencyError: the package holding the data is not installed (with the install command).
    """
    if not isinstance(name, str):
        raise ArgumentTypeError("name", name, "a domain pair name (str)")
    key = name.strip().lower().replace("-", "_")
    if key not in _PAIRS:
        raise UnknownNameError("domain pair", name, _PAIRS)
    kind, source, target = _PAIRS[key]
    return (_elpv_pair if kind == "elpv" else _sentiment_pair)(key, source, target)
