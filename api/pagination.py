"""Pagination of the management API (named in settings.REST_FRAMEWORK; imports nothing from DRF's views)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """50 items a page; ``?page_size=`` up to 500."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
