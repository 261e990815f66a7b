"""Pipeline version aliases: names for a pipeline's versions, to start, describe and list by.

The rules are the API reference's (CreatePipeline, UpdatePipeline, UpdatePipelineVersion): an alias
is 1 to 128 letters, digits, periods, hyphens and underscores (the request shape's pattern) and not
digits only; it is unique within its pipeline, so moving it to another version means removing it
from the one that has it first; a version has at most 10. The wording of the refusals is not
documented and is the local target's.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.local.contract.members import repeated
from pipelines.local.errors import invalid
from pipelines.local.storage.database import Body

ALIASES = "PipelineVersionAliases"
MAX_PER_VERSION = 10


def aliases_of(version: Body) -> list[str]:
    return list(version.get(ALIASES, []))


def answered(version: Body) -> Body:
    """The version's aliases as DescribePipeline and the listings answer them: only when it has any."""
    return {ALIASES: aliases_of(version)} if aliases_of(version) else {}


def with_aliases(version: Body, aliases: list[str]) -> Body:
    """The version holding `aliases`: a version without any keeps no member for them."""
    kept = {key: value for key, value in version.items() if key != ALIASES}
    return {**kept, ALIASES: aliases} if aliases else kept


def with_alias(versions: Iterable[Body], alias: str) -> Body | None:
    """The version that has `alias` now, if one does."""
    return next((version for version in versions if alias in aliases_of(version)), None)


def assigned(
    versions: Iterable[Body], version_id: int, adding: list[str], removing: Iterable[str] = ()
) -> list[str]:
    """Version `version_id`'s aliases once `adding` are added and `removing` removed (removing one
    the version does not have changes nothing); refused if an added alias is digits only, given
    twice, removed in the same request, kept by another version of the pipeline, or the version
    would have more than 10."""
    versions, removing = list(versions), list(removing)
    for alias in adding:
        if alias.isdigit():
            raise invalid(f"Pipeline version alias '{alias}' consists of numbers only; an alias needs a "
                          "letter, period, hyphen or underscore.")
    twice = repeated(adding)
    if twice:
        raise invalid(f"Pipeline version alias(es) {', '.join(twice)} given more than once.")
    both = sorted(set(adding) & set(removing))
    if both:
        raise invalid(f"Pipeline version alias(es) {', '.join(both)} both added and removed.")
    for alias in adding:
        holder = with_alias(versions, alias)
        if holder is not None and holder["PipelineVersionId"] != version_id:
            raise invalid(
                f"Pipeline version alias '{alias}' is assigned to version {holder['PipelineVersionId']}; "
                "an alias is unique within the pipeline: remove it from that version with "
                "UpdatePipelineVersion first."
            )
    current = next((aliases_of(v) for v in versions if v["PipelineVersionId"] == version_id), [])
    result = [alias for alias in current if alias not in removing]
    result += [alias for alias in adding if alias not in result]
    if len(result) > MAX_PER_VERSION:
        raise invalid(f"Pipeline version {version_id} would have {len(result)} aliases; a version has at "
                      f"most {MAX_PER_VERSION}.")
    return result
