"""PostgreSQL drivers and tools against meshgate's pgwire front end.

Run by the Rust test `e2e::python_clients::postgres_drivers`, which starts a
gateway over the demo mesh and passes its address in MESHGATE_PG_HOST/PORT.
"""

import asyncio
import datetime
import decimal
import os

import pytest

HOST = os.environ["MESHGATE_PG_HOST"]
PORT = int(os.environ["MESHGATE_PG_PORT"])
USER = "analyst"
PASSWORD = "meshgate"
DSN = f"host={HOST} port={PORT} user={USER} password={PASSWORD} dbname=members"
URL = f"postgresql://{USER}:{PASSWORD}@{HOST}:{PORT}/members"


# ---------------------------------------------------------------- psycopg 3
def test_psycopg3_text_and_binary():
    import psycopg

    with psycopg.connect(DSN) as conn:
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                cur.execute(
                    "SELECT member_id, first_name, birth_date FROM members WHERE member_id = %s",
                    (1003,),
                )
                member_id, first_name, birth_date = cur.fetchone()
                assert member_id == 1003
                assert isinstance(first_name, str)
                assert isinstance(birth_date, datetime.date)
        with conn.cursor() as cur:
            cur.execute("SELECT amount FROM claims.public.claims WHERE claim_id = 500000")
            (amount,) = cur.fetchone()
            assert isinstance(amount, decimal.Decimal)


def test_psycopg3_server_side_prepared_statements():
    import psycopg

    with psycopg.connect(DSN, prepare_threshold=0) as conn:
        with conn.cursor() as cur:
            for member_id in (1001, 1002, 1003):
                cur.execute("SELECT member_id FROM members WHERE member_id = %s", (member_id,))
                assert cur.fetchone() == (member_id,)


def test_psycopg3_error_then_recovery():
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
        assert conn.execute("SELECT count(*) FROM members").fetchone() == (200,)


# ---------------------------------------------------------------- psycopg2
def test_psycopg2_query_and_named_cursor():
    import psycopg2

    conn = psycopg2.connect(DSN)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM members WHERE state = %s", ("CA",))
        (count,) = cur.fetchone()
        assert count > 0
        named = conn.cursor(name="members_cursor")
        named.itersize = 50
        named.execute("SELECT member_id FROM members ORDER BY member_id")
        ids = [row[0] for row in named]
        assert ids == list(range(1000, 1200))
        named.close()
    finally:
        conn.close()


# ---------------------------------------------------------------- asyncpg
def test_asyncpg_prepared_statements_and_types():
    import asyncpg

    async def run():
        conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database="members")
        try:
            stmt = await conn.prepare("SELECT member_id, birth_date FROM members WHERE member_id = $1")
            row = await stmt.fetchrow(1010)
            assert row["member_id"] == 1010
            assert isinstance(row["birth_date"], datetime.date)
            amount = await conn.fetchval("SELECT amount FROM claims.public.claims WHERE claim_id = $1", 500001)
            assert isinstance(amount, decimal.Decimal)
        finally:
            await conn.close()

    asyncio.run(run())


# ---------------------------------------------------------------- SQLAlchemy + pandas
def test_sqlalchemy_inspect_and_pandas():
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(URL.replace("postgresql://", "postgresql+psycopg://"))
    inspector = sa.inspect(engine)
    assert "public" in inspector.get_schema_names()
    assert "members" in inspector.get_table_names(schema="public")
    columns = {c["name"]: c for c in inspector.get_columns("members", schema="public")}
    assert list(columns) == ["member_id", "first_name", "last_name", "state", "plan", "birth_date"]
    assert isinstance(columns["member_id"]["type"], sa.BigInteger)
    assert isinstance(columns["state"]["type"], sa.Text)
    assert isinstance(columns["birth_date"]["type"], sa.Date)
    assert columns["state"]["comment"] == "US state of residence (two letters)."
    # From the data product descriptor (see the demo's members/products.yaml).
    assert columns["plan"]["comment"] == "bronze, silver or gold."
    assert columns["first_name"]["comment"] is None
    assert inspector.get_table_comment("members", schema="public")["text"] == "One row per insured member."
    assert inspector.get_pk_constraint("members", schema="public")["constrained_columns"] == []
    frame = pd.read_sql("SELECT state, count(*) AS n FROM members GROUP BY state ORDER BY state", engine)
    assert frame["n"].sum() == 200
    assert list(frame.columns) == ["state", "n"]
    engine.dispose()


# ---------------------------------------------------------------- ADBC PostgreSQL driver
def test_adbc_postgresql_fetch_arrow_table():
    import adbc_driver_postgresql.dbapi as pgdbapi
    import pyarrow as pa

    with pgdbapi.connect(URL) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT member_id, state, birth_date FROM members ORDER BY member_id LIMIT 10")
            table = cur.fetch_arrow_table()
    assert table.num_rows == 10
    assert pa.types.is_int64(table.schema.field("member_id").type)
    assert pa.types.is_date32(table.schema.field("birth_date").type)
