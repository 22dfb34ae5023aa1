"""Model cards: docs/model-cards.md is what the manifest renders (regenerate with `lfr models cards --write`),
one section per embedder, and it says plainly what InsightFace's terms allow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.models import cards
from services.models.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]


def test_committed_model_cards_are_fresh() -> None:
    assert not cards.cards_doc_is_stale(), "regenerate docs/model-cards.md with 'lfr models cards --write'"


def test_a_manifest_change_makes_the_doc_stale() -> None:
    man = load_manifest()
    spec = man.models["w600k_mbf"]
    card = spec.embedder.card.model_copy(update={"training_data": "something else"})
    changed = man.model_copy(update={"models": {**man.models, "w600k_mbf": spec.model_copy(
        update={"embedder": spec.embedder.model_copy(update={"card": card})})}})
    assert cards.cards_doc_is_stale(changed)


def test_one_section_per_embedder_with_its_card() -> None:
    man = load_manifest()
    doc = cards.render_model_cards(man)
    sections = [line[3:] for line in doc.splitlines() if line.startswith("## ")]
    assert sections == [n for n, m in man.models.items() if m.embedder is not None] == ["mobilefacenet512",
                                                                                          "w600k_mbf"]
    for name in sections:
        card = man.models[name].embedder.card
        section = doc.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for text in (card.vendor, card.licence, card.training_data, card.operational_use):
            assert text in section, (name, text)


def test_the_doc_states_the_insightface_terms_and_the_way_out() -> None:
    doc = cards.CARDS_DOC.read_text(encoding="utf-8")
    flat = " ".join(doc.split())
    assert "non-commercial research only" in flat and "forbidden" in flat
    assert "hold a licence" in flat and "its own licensed model through the same manifest" in flat
    assert "lfr eval DIR --embedder NAME --calibrate" in flat
    assert "--accept-licence insightface-non-commercial-research" in flat


def test_lfr_models_card_prints_one_card() -> None:
    proc = subprocess.run([sys.executable, "-m", "services.cli.main", "models", "card", "w600k_mbf"], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60)
    assert proc.stdout == cards.render_card("w600k_mbf")
    assert proc.stdout.startswith("# w600k_mbf\n") and "**forbidden**" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "services.cli.main", "models", "card", "arcface"], cwd=REPO,
                         capture_output=True, text=True, check=False, timeout=60)
    assert bad.returncode == 2 and "unknown model 'arcface'" in bad.stderr


def test_lfr_models_list_shows_licence_and_operational_use() -> None:
    proc = subprocess.run([sys.executable, "-m", "services.cli.main", "models", "list"], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60)
    block = proc.stdout.split("w600k_mbf (", 1)[1]
    assert "licence: non-commercial research only" in block and "operational use forbidden" in block
    assert "licence: MIT" in proc.stdout.split("faceboxes (", 1)[1].split("\nonet (", 1)[0]
