"""`?bom=true` on any CSV response: a UTF-8 byte order mark first, so that Excel reads the
file as UTF-8. One hook for every CSV route, present and future."""

from __future__ import annotations

from flask import request

from service.csv_cells import UTF8_BOM

TRUE = ("true", "1")


def add_bom(response):
    if (response.mimetype == "text/csv" and response.status_code == 200
            and request.args.get("bom", "").lower() in TRUE and not response.is_streamed):
        response.set_data(UTF8_BOM.encode() + response.get_data())
    return response


def init_csv_responses(app) -> None:
    app.after_request(add_bom)
