"""The one exception type for bad input, shared by every stage.

Messages name the file, the row and the field, so that a user can go straight to the cell
that is wrong. Raising it never leaves partial output behind: callers validate first and
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
