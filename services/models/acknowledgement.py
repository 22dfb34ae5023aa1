"""Which models `lfr models build` may build: a model whose terms forbid operational use carries a
``requires_acknowledgement`` token in the manifest and is built only when that exact token is given, on the
command line (``--accept-licence TOKEN``) or in ``LFR_MODELS_ACCEPT_LICENCES`` (comma-separated; the Makefile
passes it through to ``lfr models build``). Without names every other model is built; a named model whose
token is missing, or a token no model asks for, is refused."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from services.common.errors import SetupError
from services.models.manifest import Manifest, ModelSpec

ACCEPT_ENV: Final[str] = "LFR_MODELS_ACCEPT_LICENCES"


def tokens_from_env(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The tokens in LFR_MODELS_ACCEPT_LICENCES (comma-separated, blanks ignored)."""
    return tuple(t.strip() for t in environ.get(ACCEPT_ENV, "").split(",") if t.strip())


def terms(spec: ModelSpec) -> str:
    """The model's terms in one line (from its card)."""
    if spec.embedder is None:
        return f"its terms need an acknowledgement ({spec.requires_acknowledgement})"
    card = spec.embedder.card
    return (f"{card.vendor} releases it for {card.licence} ({card.licence_url}); "
            f"operational use is {card.operational_use}")


def how_to_build(name: str, spec: ModelSpec) -> str:
    """The command that builds the model, with its acknowledgement when it needs one."""
    token = spec.requires_acknowledgement
    return f"lfr models build {name}" + (f" --accept-licence {token}" if token else "")


def how_to_build_line(name: str, spec: ModelSpec) -> str:
    """how_to_build, plus the environment variable alternative for an opt-in model."""
    token = spec.requires_acknowledgement
    return how_to_build(name, spec) + (f" (or {ACCEPT_ENV}={token})" if token else "")


def select(man: Manifest, names: list[str] | None, accepted: Iterable[str]) -> dict[str, str | None]:
    """The models to build, in manifest order, each with the token acknowledged for it (None: needs none).

    names None: every model that needs no acknowledgement, plus those whose token is in ``accepted``.
    Named models: each one that needs a token not in ``accepted`` is refused (SetupError). Any token in
    ``accepted`` that no model of the manifest asks for is refused by name."""
    given = set(accepted)
    known = {m.requires_acknowledgement for m in man.models.values() if m.requires_acknowledgement}
    wrong = sorted(given - known)
    if wrong:
        raise SetupError(f"unknown licence acknowledgement {', '.join(repr(t) for t in wrong)} "
                         f"(--accept-licence or {ACCEPT_ENV})",
                         "give exactly the token a model's manifest entry asks for: "
                         f"{', '.join(sorted(known)) or 'none'}")
    if names is not None:
        unknown = sorted(set(names) - set(man.models))
        if unknown:
            raise SetupError(f"unknown model(s) {unknown}", f"choose from {sorted(man.models)}")
    chosen: dict[str, str | None] = {}
    refused: list[str] = []
    for name, spec in man.models.items():
        token = spec.requires_acknowledgement
        if names is None:
            if token is None or token in given:
                chosen[name] = token
        elif name in names:
            if token is not None and token not in given:
                refused.append(name)
            else:
                chosen[name] = token
    if refused:
        raise SetupError(
            "not building without a licence acknowledgement: "
            + "; ".join(f"{n}: {terms(man.models[n])}" for n in refused),
            "only where your use is within those terms (e.g. non-commercial research) run "
            + "; ".join(how_to_build_line(n, man.models[n]) for n in refused)
            + "; otherwise use a model whose terms permit your use (lfr models card NAME, docs/model-cards.md)")
    if names is not None:  # the order asked for
        chosen = {n: chosen[n] for n in dict.fromkeys(names)}
    return chosen
