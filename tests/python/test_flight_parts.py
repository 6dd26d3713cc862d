"""A result in parts, fetched in parallel by pyarrow and by ADBC.

Run by the Rust test `e2e::flight_parts::pyarrow_fetches_the_parts_in_parallel`,
which serves three Parquet files as `parts.public.events` with
`[execution] target_partitions = 3` and passes the gateway's address in
MESHGATE_FLIGHT_URI and the table's row count in MESHGATE_PARTS_ROWS.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight

URI = os.environ["MESHGATE_FLIGHT_URI"]
ROWS = int(os.environ["MESHGATE_PARTS_ROWS"])
USER, PASSWORD = "admin", "admin-pw"
SQL = "SELECT id, region, amount FROM parts.public.events"


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return bytes([number << 3 | 2]) + varint(len(payload)) + payload


def statement_query(sql):
    """A Flight SQL CommandStatementQuery packed in a protobuf Any."""
    command = field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, command)


def signed_in():
    client = flight.FlightClient(URI)
    header = client.authenticate_basic_token(USER, PASSWORD)
    return client, flight.FlightCallOptions(headers=[header])


def sorted_by_id(table):
    return table.sort_by("id")


def single_stream():
    """The same rows as one sorted stream (a sorted result is never split)."""
    client, options = signed_in()
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(statement_query(SQL + " ORDER BY id")), options
    )
    assert len(info.endpoints) == 1
    return sorted_by_id(client.do_get(info.endpoints[0].ticket, options).read_all())


def test_pyarrow_fetches_every_endpoint_from_its_own_thread():
    client, options = signed_in()
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(statement_query(SQL)), options
    )
    assert len(info.endpoints) == 3
    assert info.total_records == ROWS

    def fetch(endpoint):
        own, own_options = signed_in()
        return own.do_get(endpoint.ticket, own_options).read_all()

    with ThreadPoolExecutor(max_workers=len(info.endpoints)) as pool:
        parts = list(pool.map(fetch, info.endpoints))
    assert all(part.num_rows > 0 for part in parts)
    # Strings come as plain strings (not views), as the FlightInfo says.
    assert all(part.schema == info.schema for part in parts)
    assert info.schema.field("region").type == pa.string()
    together = sorted_by_id(pa.concat_tables(parts))
    assert together.num_rows == ROWS
    assert together.equals(single_stream())


def test_adbc_reads_the_partitions_in_parallel_and_whole():
    with flightsql.connect(URI, db_kwargs={"username": USER, "password": PASSWORD}) as conn:
        with conn.cursor() as cur:
            partitions, schema = cur.adbc_execute_partitions(SQL)
            assert len(partitions) == 3
            assert schema.names == ["id", "region", "amount"]

        def read(partition):
            with flightsql.connect(
                URI, db_kwargs={"username": USER, "password": PASSWORD}
            ) as own:
                with own.cursor() as cur:
                    cur.adbc_read_partition(partition)
                    return cur.fetch_arrow_table()

        with ThreadPoolExecutor(max_workers=3) as pool:
            parts = list(pool.map(read, partitions))
        expected = single_stream()
        assert sorted_by_id(pa.concat_tables(parts)).equals(expected)

        # A plain fetch reads all endpoints itself.
        with conn.cursor() as cur:
            cur.execute(SQL)
            assert sorted_by_id(cur.fetch_arrow_table()).equals(expected)
