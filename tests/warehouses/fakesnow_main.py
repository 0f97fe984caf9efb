"""`python -m fakesnow` for the tests, with two fixes to fakesnow 0.12's Arrow answers.

fakesnow sends TIMESTAMP columns as Snowflake's (epoch, fraction) structs but drops their null
mask, so a NULL timestamp reaches the connector as 1970-01-01 00:00:00 (fetchall and Arrow
alike). Real Snowflake sends NULL. The struct is rebuilt here with the column's nulls; nothing
else changes.

fakesnow sends a NUMBER(p, s) column as DuckDB's decimal128. Real Snowflake sends the unscaled
integers in the narrowest integer type that holds them (int64 at most; decimal128 beyond), with
the scale in the field's metadata, and the connector converts such a column of scale > 0 to
float64 unless asked for decimals (arrow_number_to_decimal): here too, a column whose unscaled
values fit in 64 bits is sent as int64.

fakesnow answers every query inline. Real Snowflake sends a large result as a first chunk inline
and the rest as a list of chunks the connector downloads from pre-signed URLs, valid for 6 hours
(the connector's ResultBatch), and gives the same chunks with fresh URLs at GET
/queries/<id>/result. With FAKESNOW_CHUNK_ROWS=N a result of more than N rows is served that way
(N rows a chunk; the chunks of the last 64 results are kept, up to 256 MB), `POST
/_test/expire-chunks` makes every URL handed out so far answer 403 as an expired S3 URL does, and
`GET /_test/chunk-gets` counts the downloads.
Run: python -m tests.warehouses.fakesnow_main -s -p PORT --host 127.0.0.1
"""
from __future__ import annotations

import base64
import collections
import json
import os
import sys

import fakesnow.arrow
import importlib

import fakesnow
import fakesnow.cli
import pyarrow as pa

_original = fakesnow.arrow.timestamp_to_sf_struct


def timestamp_to_sf_struct(ts):
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    if not ts.null_count:
        return _original(ts)
    filled = ts.fill_null(pa.scalar(0, ts.type))
    struct = _original(filled)
    return pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=ts.is_null())


fakesnow.arrow.timestamp_to_sf_struct = timestamp_to_sf_struct

_to_sf = fakesnow.arrow.to_sf


def _unscaled(value, scale: int) -> int | None:
    if value is None:
        return None
    sign, digits, exponent = value.as_tuple()
    n = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    shift = exponent + scale
    return n * 10**shift if shift >= 0 else n // 10**-shift


def to_sf(table: pa.Table, rowtype):
    columns = []
    for col in table.columns:
        if pa.types.is_decimal(col.type):
            ints = [_unscaled(v, col.type.scale) for v in col.to_pylist()]
            if all(i is None or -(2**63) <= i < 2**63 for i in ints):
                col = pa.chunked_array([pa.array(ints, pa.int64())])
        columns.append(col)
    return _to_sf(pa.Table.from_arrays(columns, names=table.column_names), rowtype)


# The module fakesnow.server imported it by name. Importing that module shadows the package's
# server() (which reads `fakesnow.server.app` after its own import): the function is put back, with the app.
_server = fakesnow.server
_module = importlib.import_module("fakesnow.server")
fakesnow.arrow.to_sf = _module.to_sf = to_sf
fakesnow.server = _server
_server.app = _module.app

CHUNK_ROWS = int(os.environ.get("FAKESNOW_CHUNK_ROWS", "0"))  # 0: every result inline, as fakesnow does
KEPT_BYTES = 256 << 20  # the chunks of the newest results are kept, up to this much (and 64 results)
_results: collections.OrderedDict[str, tuple[dict, list[bytes], list[int]]] = collections.OrderedDict()
_state = {"generation": 0, "gets": 0}


def _chunk_list(qid: str, blobs: list[bytes], rows: list[int], base: str) -> list[dict]:
    g = _state["generation"]
    return [{"url": f"{base}_chunks/{qid}/{i}?g={g}", "rowCount": n, "uncompressedSize": len(b),
             "compressedSize": len(b)} for i, (b, n) in enumerate(zip(blobs, rows))]


def _chunked(data: dict, base: str) -> dict:
    """The answer with the rows beyond the first CHUNK_ROWS moved to downloadable chunks."""
    table = pa.ipc.open_stream(base64.b64decode(data["rowsetBase64"])).read_all()
    if table.num_rows <= CHUNK_ROWS:
        return data
    parts = [table.slice(o, CHUNK_ROWS) for o in range(CHUNK_ROWS, table.num_rows, CHUNK_ROWS)]
    blobs = [fakesnow.arrow.to_ipc(t).to_pybytes() for t in parts]
    rows = [t.num_rows for t in parts]
    data = dict(data, rowsetBase64=base64.b64encode(fakesnow.arrow.to_ipc(table.slice(0, CHUNK_ROWS))).decode(),
                chunkHeaders={})
    _results[data["queryId"]] = (data, blobs, rows)
    while len(_results) > 64 or (len(_results) > 1 and sum(sum(map(len, r[1])) for r in _results.values()) > KEPT_BYTES):
        _results.popitem(last=False)
    data["chunks"] = _chunk_list(data["queryId"], blobs, rows, base)
    return data


def _with_chunks(app):
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    route = next(r for r in app.router.routes if getattr(r, "path", "") == "/queries/v1/query-request")
    answer = route.endpoint

    async def query_request(request):
        response = await answer(request)
        body = json.loads(response.body)
        data = body.get("data") or {}
        if response.status_code != 200 or data.get("queryResultFormat") != "arrow" or not data.get("rowsetBase64"):
            return response
        body["data"] = _chunked(data, str(request.base_url))
        return JSONResponse(body)

    async def query_result(request):
        qid = request.path_params["qid"]
        if qid not in _results:
            return JSONResponse({"data": None, "code": "000709", "message": f"Statement {qid} not found",
                                 "success": False})
        data, blobs, rows = _results[qid]
        return JSONResponse({"data": dict(data, chunks=_chunk_list(qid, blobs, rows, str(request.base_url))),
                             "success": True})

    async def chunk(request):
        qid, i = request.path_params["qid"], int(request.path_params["i"])
        if int(request.query_params.get("g", -1)) < _state["generation"] or qid not in _results:
            return Response("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                            "<Message>Request has expired</Message></Error>", status_code=403,
                            media_type="application/xml")
        _state["gets"] += 1
        return Response(_results[qid][1][i], media_type="application/octet-stream")

    async def expire(request):
        _state["generation"] += 1
        return JSONResponse({"generation": _state["generation"]})

    async def gets(request):
        return JSONResponse({"gets": _state["gets"]})

    app.router.routes[app.router.routes.index(route)] = Route(route.path, query_request, methods=["POST"])
    app.router.routes += [Route("/queries/{qid}/result", query_result, methods=["GET"]),
                          Route("/_chunks/{qid}/{i}", chunk, methods=["GET"]),
                          Route("/_test/expire-chunks", expire, methods=["POST"]),
                          Route("/_test/chunk-gets", gets, methods=["GET"])]


if CHUNK_ROWS:
    _with_chunks(_module.app)

if __name__ == "__main__":
    sys.exit(fakesnow.cli.main(sys.argv[1:]))
