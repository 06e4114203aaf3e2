"""Shared loaders for the plan tests: the repository's config and the bench room."""

from __future__ import annotations

from pathlib import Path

from sessionconsole.model.contraindication import Contraindications, load_contraindications
from sessionconsole.model.limits import ClinicalLimits, load_clinical_limits
from sessionconsole.model.preset import Preset, load_presets
from sessionconsole.model.room import load_room
from sessionconsole.model.validation import AnyProfile
from sessionconsole.model.vocabulary import Vocabulary, load_vocabulary

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
DATA = Path(__file__).resolve().parent / "data"
EXAMPLE_PLAN = CONFIG / "plans" / "PT-0042" / "low-back.toml"
BENCH_ROOM = DATA / "bench-room.toml"
PATIENT = DATA / "PT-0042.toml"


def presets() -> dict[str, Preset]:
    return load_presets(CONFIG / "protocols")


def rules() -> Contraindications:
    return load_contraindications(CONFIG / "contraindications.toml")


def clinical() -> ClinicalLimits:
    return load_clinical_limits(CONFIG / "clinical-limits.toml")


def vocabulary() -> Vocabulary:
    return load_vocabulary(CONFIG / "vocabulary.toml")


def bench_profiles() -> dict[str, AnyProfile]:
    return load_room(BENCH_ROOM)[1]
