// node-postgres (`pg`) against meshgate, with node's own test runner.
// Run by the Rust e2e test `python_clients::node_postgres`, which passes the
// gateway's address in MESHGATE_PG_HOST / MESHGATE_PG_PORT.
import { test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";

const config = {
  host: process.env.MESHGATE_PG_HOST,
  port: Number(process.env.MESHGATE_PG_PORT),
  user: "analyst",
  password: "meshgate",
  database: "members",
};

test("simple and parameterised queries", async () => {
  const client = new pg.Client(config);
  await client.connect();
  try {
    const count = await client.query("SELECT count(*) AS n FROM members");
    assert.equal(Number(count.rows[0].n), 200);
    const one = await client.query(
      "SELECT member_id, state FROM members WHERE member_id = $1",
      [1007],
    );
    assert.equal(one.rows.length, 1);
    assert.equal(String(one.rows[0].member_id), "1007");
    const named = { name: "by-id", text: "SELECT member_id FROM members WHERE member_id = $1", values: [1008] };
    assert.equal(String((await client.query(named)).rows[0].member_id), "1008");
    assert.equal(String((await client.query({ ...named, values: [1009] })).rows[0].member_id), "1009");
  } finally {
    await client.end();
  }
});

test("types and errors", async () => {
  const client = new pg.Client(config);
  await client.connect();
  try {
    const r = await client.query(
      "SELECT amount, service_date, status FROM claims.public.claims WHERE claim_id = 500000",
    );
    assert.match(r.rows[0].amount, /^\d+\.\d{2}$/);
    assert.ok(r.rows[0].service_date instanceof Date);
    await assert.rejects(client.query("SELECT * FROM no_such_table"), (err) => err.code === "42P01");
    const after = await client.query("SELECT 1 AS one");
    assert.equal(Number(after.rows[0].one), 1);
  } finally {
    await client.end();
  }
});
