"""The one exception type for bad input, shared by every stage.

Messages name the file, the row and the field, so that a user can go straight to the cell
that is wrong. ``row`` counts data rows from 1, the header excluded (pandas' index + 1), in
every stage. Raising it never leaves partial output behind: callers validate first and
write afterwards.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input data, located as precisely as we know it."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.field = field
        where = []
        if source:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field '{field}'")
        self.message = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def field_path(location: tuple) -> str:
    """pydantic's location tuple as a field path, ``scenes[1].images``; the tags pydantic
    adds for the members of a union (``str``, ``list[...]``) are left out."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "bool") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation(err: Exception, source: str | None) -> InputError:
    """A pydantic ``ValidationError`` as the first field it rejects and why."""
    first = err.errors()[0]  # type: ignore[attr-defined]
    field = field_path(tuple(first.get("loc", ()))) or None
    message = first["msg"]
    if first.get("type") == "extra_forbidden":
        message += " (a misspelt setting?)"
    return InputError(message, source=source, field=field)


def from_yaml(err: Exception, source: str | None) -> InputError:
    """A YAML syntax error as one line naming the line and column."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return InputError(
        f"is not valid YAML{where}: {problem}" + (f" ({context})" if context else ""),
        source=source,
    )
