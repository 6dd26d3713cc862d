//! The roles a pgwire session sees in `pg_catalog`: `pg_roles`, `pg_user`,
//! `pg_authid`, `pg_auth_members` and `pg_group`.
//!
//! meshgate's roles are its users (configured or signed in with a token)
//! and the policy's groups. Like every other listing, what a session sees
//! of them follows the policy: a policy admin sees every user and group; any
//! other user sees only themselves and the groups they belong to, so a
//! user with no grants cannot enumerate the accounts of the gateway. Without
//! a policy every user is unrestricted and sees every user (there are no
//! groups then).
//!
//! The rows are computed when a table is scanned, from the policy the
//! statement is planned under, so a role change shows at the next statement.
//! OIDs are derived from the role's kind and name: they are stable across
//! sessions and reveal nothing about other roles (no counter, no position).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int32Builder, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};

use crate::access::AccessGuard;
use crate::runtime::table::{RowSource, SnapshotTable};
use crate::Identity;

/// The role tables this module serves, by pg_catalog name.
pub(crate) const ROLE_TABLES: &[&str] = &[
    "pg_roles",
    "pg_user",
    "pg_authid",
    "pg_auth_members",
    "pg_group",
];

/// One session's view of meshgate's roles (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct SessionRoles {
    /// Every configured user, as the service knows them.
    users: Arc<Vec<String>>,
    identity: Identity,
    /// The session's view of the policy; `None` without a policy.
    guard: Option<Arc<AccessGuard>>,
}

/// A role as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RoleRow {
    name: String,
    /// Users log in; groups do not.
    login: bool,
    /// A policy admin (PostgreSQL's superuser is the closest meaning).
    admin: bool,
}

impl RoleRow {
    fn oid(&self) -> i32 {
        role_oid(self.login, &self.name)
    }
}

/// What the session may see: roles and `(group, member)` memberships.
#[derive(Debug, Default)]
struct Visible {
    roles: Vec<RoleRow>,
    members: Vec<(String, String)>,
}

impl SessionRoles {
    pub(crate) fn new(
        users: Arc<Vec<String>>,
        identity: Identity,
        guard: Option<Arc<AccessGuard>>,
    ) -> Self {
        Self {
            users,
            identity,
            guard,
        }
    }

    fn visible(&self) -> Visible {
        let Some(guard) = &self.guard else {
            let mut users: BTreeSet<&String> = self.users.iter().collect();
            users.insert(&self.identity.user);
            return Visible {
                roles: users.into_iter().map(|u| user_row(u, false)).collect(),
                members: vec![],
            };
        };
        let policy = guard.policy();
        let me = self.identity.principal(&policy);
        let mut users: BTreeSet<String> = BTreeSet::from([me.user.clone()]);
        let mut memberships: BTreeSet<(String, String)> = me
            .groups
            .iter()
            .map(|g| (g.clone(), me.user.clone()))
            .collect();
        let mut groups: BTreeSet<String> = me.groups.clone();
        if guard.is_admin() {
            let doc = policy.document();
            users.extend(self.users.iter().cloned());
            users.extend(doc.users.keys().cloned());
            for (group, members) in &doc.groups {
                groups.insert(group.clone());
                for member in members {
                    users.insert(member.clone());
                    memberships.insert((group.clone(), member.clone()));
                }
            }
        }
        let mut roles: Vec<RoleRow> = users
            .iter()
            .map(|u| {
                // The policy's own decision; one's own includes token groups.
                let admin = if *u == me.user {
                    guard.is_admin()
                } else {
                    policy.is_admin(&policy.principal(u))
                };
                user_row(u, admin)
            })
            .collect();
        roles.extend(groups.into_iter().map(|name| RoleRow {
            name,
            login: false,
            admin: false,
        }));
        roles.sort();
        Visible {
            roles,
            members: memberships.into_iter().collect(),
        }
    }
}

fn user_row(name: &str, admin: bool) -> RoleRow {
    RoleRow {
        name: name.to_owned(),
        login: true,
        admin,
    }
}

/// A stable OID for a role: FNV-1a of its kind and name, above
/// PostgreSQL's range of built-in OIDs.
pub(crate) fn role_oid(login: bool, name: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    let kind: &[u8] = if login { b"user:" } else { b"group:" };
    for byte in kind.iter().chain(name.as_bytes()) {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    // Keep clear of PostgreSQL's fixed OIDs (< 16384) and of the sign bit.
    (16_384 + hash % 0x7fff_0000) as i32
}

#[async_trait]
impl PgCatalogContextProvider for SessionRoles {
    async fn roles(&self) -> Vec<String> {
        self.visible().roles.into_iter().map(|r| r.name).collect()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        self.visible()
            .roles
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| Role {
                name: r.name,
                is_superuser: r.admin,
                can_login: r.login,
                can_create_db: false,
                can_create_role: false,
                can_create_user: false,
                can_replication: false,
                grants: vec![],
                inherited_roles: vec![],
            })
    }
}

/// The role tables of one session, to serve in place of the built-in ones.
pub(crate) fn role_tables(roles: &SessionRoles) -> Vec<(&'static str, Arc<dyn TableProvider>)> {
    ROLE_TABLES
        .iter()
        .map(|name| {
            let table = RoleTable {
                name,
                schema: schema_of(name),
                roles: roles.clone(),
            };
            let schema = table.schema.clone();
            let rows: RowSource = Arc::new(move || table.batch());
            let table: Arc<dyn TableProvider> = Arc::new(SnapshotTable::new(schema, rows));
            (*name, table)
        })
        .collect()
}

fn schema_of(table: &str) -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let flag = |n: &str| Field::new(n, DataType::Boolean, true);
    let oid = |n: &str| Field::new(n, DataType::Int32, true);
    let valid_until = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            true,
        )
    };
    let text_list = |n: &str| {
        Field::new(
            n,
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        )
    };
    let fields = match table {
        "pg_user" => vec![
            text("usename"),
            oid("usesysid"),
            flag("usecreatedb"),
            flag("usesuper"),
            flag("userepl"),
            flag("usebypassrls"),
            text("passwd"),
            valid_until("valuntil"),
            text_list("useconfig"),
        ],
        "pg_auth_members" => vec![
            oid("oid"),
            oid("roleid"),
            oid("member"),
            oid("grantor"),
            flag("admin_option"),
            flag("inherit_option"),
            flag("set_option"),
        ],
        "pg_group" => vec![
            text("groname"),
            oid("grosysid"),
            Field::new(
                "grolist",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ),
        ],
        // pg_roles and pg_authid: pg_authid has the OID first.
        _ => {
            let mut fields = vec![
                text("rolname"),
                flag("rolsuper"),
                flag("rolinherit"),
                flag("rolcreaterole"),
                flag("rolcreatedb"),
                flag("rolcanlogin"),
                flag("rolreplication"),
                Field::new("rolconnlimit", DataType::Int32, true),
                text("rolpassword"),
                valid_until("rolvaliduntil"),
                flag("rolbypassrls"),
            ];
            if table == "pg_authid" {
                fields.insert(0, oid("oid"));
            } else {
                fields.push(text_list("rolconfig"));
                fields.push(oid("oid"));
            }
            fields
        }
    };
    Arc::new(Schema::new(fields))
}

/// One of [`ROLE_TABLES`], computed at scan time.
struct RoleTable {
    name: &'static str,
    schema: SchemaRef,
    roles: SessionRoles,
}

impl RoleTable {
    fn batch(&self) -> Result<RecordBatch> {
        let visible = self.roles.visible();
        let roles = &visible.roles;
        let n = roles.len();
        let flags = |f: &dyn Fn(&RoleRow) -> bool| -> ArrayRef {
            Arc::new(roles.iter().map(|r| Some(f(r))).collect::<BooleanArray>())
        };
        let constant =
            |v: bool, len: usize| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; len])) };
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            roles.iter().map(|r| r.name.as_str()),
        ));
        let oids: ArrayRef = Arc::new(Int32Array::from_iter_values(roles.iter().map(RoleRow::oid)));
        let no_time = |len: usize| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::new_null(len).with_timezone("UTC"))
        };
        let no_config = |len: usize| -> ArrayRef {
            let mut builder = ListBuilder::new(StringBuilder::new());
            for _ in 0..len {
                builder.append_null();
            }
            Arc::new(builder.finish())
        };
        // PostgreSQL masks passwords in its readable views.
        let masked = |len: usize, text: Option<&str>| -> ArrayRef {
            Arc::new(StringArray::from(vec![text; len]))
        };
        let columns: Vec<ArrayRef> = match self.name {
            "pg_user" => {
                let users: Vec<&RoleRow> = roles.iter().filter(|r| r.login).collect();
                let len = users.len();
                vec![
                    Arc::new(StringArray::from_iter_values(
                        users.iter().map(|r| r.name.as_str()),
                    )),
                    Arc::new(Int32Array::from_iter_values(users.iter().map(|r| r.oid()))),
                    constant(false, len),
                    Arc::new(
                        users
                            .iter()
                            .map(|r| Some(r.admin))
                            .collect::<BooleanArray>(),
                    ),
                    constant(false, len),
                    constant(false, len),
                    masked(len, Some("********")),
                    no_time(len),
                    no_config(len),
                ]
            }
            "pg_auth_members" => {
                let members = &visible.members;
                let len = members.len();
                let pairs = |f: &dyn Fn(&(String, String)) -> i32| -> ArrayRef {
                    Arc::new(Int32Array::from_iter_values(members.iter().map(f)))
                };
                vec![
                    pairs(&|(g, u)| role_oid(false, &format!("{g}\u{0}{u}"))),
                    pairs(&|(g, _)| role_oid(false, g)),
                    pairs(&|(_, u)| role_oid(true, u)),
                    Arc::new(Int32Array::from(vec![10; len])),
                    constant(false, len),
                    constant(true, len),
                    constant(true, len),
                ]
            }
            "pg_group" => {
                let groups: Vec<&RoleRow> = roles.iter().filter(|r| !r.login).collect();
                let mut lists = ListBuilder::new(Int32Builder::new());
                for group in &groups {
                    for (g, u) in &visible.members {
                        if *g == group.name {
                            lists.values().append_value(role_oid(true, u));
                        }
                    }
                    lists.append(true);
                }
                vec![
                    Arc::new(StringArray::from_iter_values(
                        groups.iter().map(|r| r.name.as_str()),
                    )),
                    Arc::new(Int32Array::from_iter_values(groups.iter().map(|r| r.oid()))),
                    Arc::new(lists.finish()),
                ]
            }
            table => {
                let mut columns = vec![
                    names,
                    flags(&|r| r.admin),
                    constant(true, n),
                    constant(false, n),
                    constant(false, n),
                    flags(&|r| r.login),
                    constant(false, n),
                    Arc::new(Int32Array::from(vec![-1; n])),
                    masked(
                        n,
                        if table == "pg_authid" {
                            None
                        } else {
                            Some("********")
                        },
                    ),
                    no_time(n),
                    constant(false, n),
                ];
                if table == "pg_authid" {
                    columns.insert(0, oids);
                } else {
                    columns.push(no_config(n));
                    columns.push(oids);
                }
                columns
            }
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_stable_distinct_and_above_the_builtin_range() {
        assert_eq!(role_oid(true, "analyst"), role_oid(true, "analyst"));
        assert_ne!(role_oid(true, "analyst"), role_oid(false, "analyst"));
        assert_ne!(role_oid(true, "analyst"), role_oid(true, "admin"));
        for name in ["", "a", "analyst", "a very long role name indeed"] {
            assert!(role_oid(true, name) >= 16_384);
            assert!(role_oid(false, name) >= 16_384);
        }
    }

    #[test]
    fn without_a_policy_every_user_is_listed() {
        let roles = SessionRoles::new(
            Arc::new(vec!["a".into(), "b".into()]),
            Identity::new("a"),
            None,
        );
        let table = RoleTable {
            name: "pg_roles",
            schema: schema_of("pg_roles"),
            roles,
        };
        let batch = table.batch().unwrap();
        assert_eq!(batch.num_rows(), 2);
        for name in ROLE_TABLES {
            let table = RoleTable {
                name,
                schema: schema_of(name),
                roles: table.roles.clone(),
            };
            table.batch().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
