"""SQL over HTTP (POST /v1/sql) read by pyarrow and polars, under the
attack suite's policy: the analyst's row filter (no NY) and last_name mask
hold exactly as over pgwire."""
import base64
import io
import json
import os
import urllib.error
import urllib.request

import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.ipc

URL = os.environ["MESHGATE_HTTP_URL"] + "/v1/sql"
PG = (
    f"host={os.environ['MESHGATE_PG_HOST']} port={os.environ['MESHGATE_PG_PORT']} "
    "user=analyst password=meshgate dbname=members"
)
SQL = "SELECT member_id, last_name, state FROM members.public.members ORDER BY member_id"


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ANALYST = basic("analyst", "meshgate")


def post(body, content_type="text/plain", accept=None, auth=ANALYST):
    request = urllib.request.Request(URL, data=body.encode(), method="POST")
    request.add_header("Content-Type", content_type)
    if accept:
        request.add_header("Accept", accept)
    if auth:
        request.add_header("Authorization", auth)
    return urllib.request.urlopen(request)


def over_pgwire(sql, params=None):
    with psycopg.connect(PG) as conn:
        return conn.execute(sql, params).fetchall()


def test_arrow_stream_read_by_pyarrow_matches_pgwire():
    with post(SQL) as response:
        assert response.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
        assert len(response.headers["x-meshgate-query-id"]) == 20
        table = pa.ipc.open_stream(response).read_all()
    rows = list(zip(*(table.column(i).to_pylist() for i in range(3))))
    assert rows == over_pgwire(SQL)
    assert set(table.column("last_name").to_pylist()) == {"***"}
    assert "NY" not in set(table.column("state").to_pylist())
    assert table.schema.field("member_id").type == pa.int64()


def test_polars_reads_arrow_ndjson_and_csv_alike():
    with post(SQL) as response:
        arrow = pl.read_ipc_stream(response.read())
    with post(SQL, accept="application/x-ndjson") as response:
        ndjson = pl.read_ndjson(io.BytesIO(response.read()))
    with post(SQL, accept="text/csv") as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        csv = pl.read_csv(io.BytesIO(response.read()))
    expected = len(over_pgwire(SQL))
    assert arrow.height == ndjson.height == csv.height == expected
    assert arrow["member_id"].to_list() == ndjson["member_id"].to_list() == csv["member_id"].to_list()
    assert arrow["last_name"].unique().to_list() == ["***"]


def test_a_json_body_binds_parameters():
    body = json.dumps(
        {
            "sql": "SELECT count(*) AS n FROM members.public.members WHERE state = $1 AND member_id > $2",
            "params": ["CA", 1050],
        }
    )
    with post(body, content_type="application/json", accept="application/x-ndjson") as response:
        n = json.loads(response.read().decode().splitlines()[0])["n"]
    (expected,) = over_pgwire(
        "SELECT count(*) FROM members.public.members WHERE state = %s AND member_id > %s",
        ("CA", 1050),
    )[0]
    assert n == expected
    # `?` placeholders bind in order, as JDBC-style clients write them.
    body = json.dumps(
        {
            "sql": "SELECT count(*) AS n FROM members.public.members WHERE state = ? AND member_id > ?",
            "params": ["CA", 1050],
        }
    )
    with post(body, content_type="application/json", accept="application/x-ndjson") as response:
        assert json.loads(response.read().decode().splitlines()[0])["n"] == expected


def error_of(body, auth=ANALYST):
    try:
        post(body, auth=auth)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    raise AssertionError(f"{body} succeeded")


def test_errors_are_json_with_the_sqlstate_and_the_server_keeps_serving():
    status, error = error_of("SELECT nope FROM members.public.members")
    assert (status, error["sqlstate"]) == (400, "42703")
    status, error = error_of("DELETE FROM members.public.members")
    assert (status, error["sqlstate"]) == (409, "25006")
    # A table the policy hides does not exist for the caller.
    status, error = error_of("SELECT * FROM members.public.members", auth=basic("intruder", "intruder-pw"))
    assert (status, error["sqlstate"]) == (404, "42P01")
    status, _ = error_of("SELECT 1", auth=None)
    assert status == 401
    with post("SELECT 1 AS one", accept="application/x-ndjson") as response:
        assert json.loads(response.read()) == {"one": 1}
