"""meshgate through the ADBC Flight SQL driver, as a data scientist uses it.

Run by the Rust test `e2e::python_clients::adbc_flight_sql`, which starts a
gateway over the demo mesh and passes its address in MESHGATE_FLIGHT_URI.
"""

import os

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pytest

URI = os.environ["MESHGATE_FLIGHT_URI"]
USER = os.environ.get("MESHGATE_USER", "analyst")
PASSWORD = os.environ.get("MESHGATE_PASSWORD", "meshgate")

CROSS_DOMAIN_JOIN = """
SELECT m.state, p.specialty, count(*) AS claims, sum(c.amount) AS total
FROM claims.public.claims c
JOIN members.public.members m ON m.member_id = c.member_id
JOIN providers.public.providers p ON p.provider_id = c.provider_id
WHERE c.status = 'approved'
GROUP BY m.state, p.specialty ORDER BY total DESC LIMIT 5
"""


@pytest.fixture()
def conn():
    with flightsql.connect(URI, db_kwargs={"username": USER, "password": PASSWORD}) as c:
        yield c


def test_cross_catalog_query_into_arrow(conn):
    with conn.cursor() as cur:
        cur.execute(CROSS_DOMAIN_JOIN)
        table = cur.fetch_arrow_table()
    assert table.num_rows == 5
    assert table.column_names == ["state", "specialty", "claims", "total"]
    assert pa.types.is_int64(table.schema.field("claims").type)
    assert pa.types.is_decimal128(table.schema.field("total").type)
    assert table.schema.field("total").type.scale == 2
    totals = table.column("total").to_pylist()
    assert totals == sorted(totals, reverse=True)
    assert all(n > 0 for n in table.column("claims").to_pylist())


def test_arrow_types_are_native(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT claim_id, service_date, amount, "
            "CAST(service_date AS TIMESTAMP) AS service_ts "
            "FROM claims.public.claims WHERE claim_id = 500000"
        )
        table = cur.fetch_arrow_table()
    schema = table.schema
    assert table.num_rows == 1
    assert pa.types.is_int64(schema.field("claim_id").type)
    assert pa.types.is_date32(schema.field("service_date").type)
    assert schema.field("amount").type == pa.decimal128(10, 2)
    assert pa.types.is_timestamp(schema.field("service_ts").type)
    row = table.to_pylist()[0]
    assert row["service_ts"].date() == row["service_date"]


def test_get_objects_lists_the_mesh(conn):
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    catalogs = {o["catalog_name"]: o for o in objects}
    assert {"members", "claims", "providers"} <= set(catalogs)
    schemas = {s["db_schema_name"]: s for s in catalogs["claims"]["catalog_db_schemas"]}
    tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
    columns = [c["column_name"] for c in tables["claims"]["table_columns"]]
    assert "amount" in columns and "member_id" in columns


def test_prepared_statement_with_a_parameter(conn):
    with conn.cursor() as cur:
        for member_id in (1005, 1042):
            cur.execute(
                "SELECT member_id, state FROM members.public.members WHERE member_id = $1",
                parameters=(member_id,),
            )
            table = cur.fetch_arrow_table()
            assert table.num_rows == 1
            assert table.column("member_id").to_pylist() == [member_id]


def test_an_error_leaves_the_connection_usable(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.execute("SELECT * FROM members.public.no_such_table")
            cur.fetch_arrow_table()
        assert "no_such_table" in str(err.value)
        cur.execute("SELECT count(*) AS n FROM members.public.members")
        assert cur.fetch_arrow_table().column("n").to_pylist() == [200]


def test_wrong_password_is_refused():
    with pytest.raises(adbc_driver_manager.Error):
        with flightsql.connect(URI, db_kwargs={"username": USER, "password": "wrong"}) as c:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetch_arrow_table()


def test_question_mark_parameters_bind_in_order(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT claim_id, status FROM claims.public.claims WHERE claim_id = ? AND status <> ?",
            (500000, "no such status"),
        )
        table = cur.fetch_arrow_table()
    assert table.num_rows == 1
    assert table.column("claim_id").to_pylist() == [500000]


def test_current_catalog_and_schema_are_session_options(conn):
    assert conn.adbc_current_catalog == "members"
    conn.adbc_current_catalog = "claims"
    conn.adbc_current_db_schema = "public"
    assert conn.adbc_current_catalog == "claims"
    assert conn.adbc_current_db_schema == "public"
    with conn.cursor() as cur:
        # Unqualified names now resolve in claims.public.
        cur.execute("SELECT count(*) AS n FROM claims")
        assert cur.fetchone()[0] > 0
        # A SET statement persists for the connection's later statements.
        cur.execute("SET TimeZone = 'Asia/Tokyo'")
        cur.execute("SHOW TimeZone")
        assert cur.fetchone()[0] == "Asia/Tokyo"
