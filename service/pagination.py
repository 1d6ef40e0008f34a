"""One page of a list: `{"items", "total", "page", "page_size"}` in the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@dataclass
class Page:
    items: list[Any]
    total: int
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE


def paginate(queryset, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE) -> Page:
    """Two round trips whatever the size: the count and the slice."""
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    page = max(1, page)
    total = queryset.count()
    items = list(queryset.skip((page - 1) * page_size).limit(page_size))
    return Page(items, total, page, page_size)


def paginate_list(items: list, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE) -> Page:
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    page = max(1, page)
    start = (page - 1) * page_size
    return Page(items[start:start + page_size], len(items), page, page_size)
