"""``limit``/``offset`` paging of the list routes and the page body they return."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query


class Page:
    """``limit``/``offset`` query parameters of every list route (newest first)."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


PageParams = Annotated[Page, Depends()]


def page_body(items: list[Any], *, total: int, page: Page) -> dict[str, Any]:
    """A page of a list route: ``items`` with the total count and the paging asked for."""
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
