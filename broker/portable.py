"""A job as each site would take it: its profile's translation and the account it charges.

Pure. The intake check, the placement preview, placement itself and the submission all call
``fit`` with the same inputs and get the same answer: the request sent to a site is the one
the preview showed.

The account charged is always the site's mapping of the job's project
(``SiteConfig.accounts``). A job may name an account (``attributes.account`` or the
``slurm.account`` custom attribute) only when the mapping lists it for that project.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from adapters import registry
from adapters.profile import Translation, duration_text, translate
from adapters.psij import JobSpec
from broker.config import SiteConfig
from broker.placement import SiteFit

# custom attributes that would name the account behind the mapping's back
ACCOUNT_ATTRIBUTES: tuple[str, ...] = ("slurm.account", "slurm.A", "account", "project")


class Fit(msgspec.Struct, frozen=True):
    site: str
    reasons: list[str]  # empty: the site can take the job
    fields: list[str]  # the request field each reason is about (for a 422)
    translation: Translation | None = None  # the spec as the adapter gets it
    account: str | None = None

    def view(self) -> SiteFit:
        return SiteFit(reasons=list(self.reasons), translated=self.translation.summary if self.translation else None)


def asked_account(spec: JobSpec) -> tuple[str | None, str | None]:
    """(the account a job names, the field it names it in), or (None, None)."""
    if spec.attributes.account:
        return spec.attributes.account, "spec.attributes.account"
    for key in ACCOUNT_ATTRIBUTES:
        if key in spec.attributes.custom_attributes:
            return spec.attributes.custom_attributes[key], f"spec.attributes.custom_attributes.{key}"
    return None, None


def _field_of(reason: str) -> str:
    if reason.startswith("custom attribute"):
        return "spec.attributes.custom_attributes"
    if reason.startswith("has no "):
        return "spec.attributes.queue_name"
    if reason.startswith("asks") and "per node" in reason:
        return "spec.resources"
    return "spec"


def fit(site: SiteConfig, project: str, spec: JobSpec, system_hint: str | None = None) -> Fit:
    """What ``site`` makes of the job: the translated spec (account set, queue, node type and
    required attributes filled in) or every reason it cannot take it."""
    reasons: list[str] = []
    fields: list[str] = []
    allowed = site.accounts_allowed(project)
    wanted, where = asked_account(spec)
    if wanted is not None and wanted not in allowed:
        reasons.append(f"account {wanted!r} is not one project {project} may charge here ({', '.join(allowed)})")
        fields.append(where or "spec.attributes.account")
    account = wanted if wanted in allowed else allowed[0]
    custom = {k: v for k, v in spec.attributes.custom_attributes.items() if k not in ACCOUNT_ATTRIBUTES}
    spec = msgspec.structs.replace(
        spec, attributes=msgspec.structs.replace(spec.attributes, account=account, custom_attributes=custom)
    )
    systems = [system_hint] if system_hint in site.systems else list(site.systems)
    vocab = registry.vocabulary(site.kind)
    chosen: Translation | None = None
    misses: list[str] = []
    for system in systems:
        profile = site.profiles.get(system)
        if profile is None:  # no profile: the job goes as it was given
            walltime = spec.attributes.duration
            chosen = Translation(
                system=system,
                queue=spec.attributes.queue_name or "",
                node_type="",
                spec=spec,
                summary=f"{system}: as given (no profile), {spec.nodes} node{'s' if spec.nodes != 1 else ''}"
                + (f", {duration_text(walltime)}" if walltime else ""),
            )
            break
        out = translate(spec, profile, vocab, system)
        if isinstance(out, Translation):
            chosen = out
            break
        prefix = f"{system}: " if len(systems) > 1 else ""
        misses += [prefix + r for r in out]
    if chosen is None:
        reasons += misses
        fields += [_field_of(r.split(": ", 1)[-1] if len(systems) > 1 else r) for r in misses]
    if reasons:
        return Fit(site=site.name, reasons=reasons, fields=fields, translation=chosen, account=account)
    return Fit(site=site.name, reasons=[], fields=[], translation=chosen, account=account)


def fits(sites: Iterable[SiteConfig], project: str, spec: JobSpec, system_hint: str | None = None) -> dict[str, Fit]:
    return {s.name: fit(s, project, spec, system_hint) for s in sites}


def views(fitted: dict[str, Fit]) -> dict[str, SiteFit]:
    return {name: f.view() for name, f in fitted.items()}
