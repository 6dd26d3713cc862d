//! Owners edit their own products' descriptors through the admin API, as
//! the policy's `edit_product` grants allow: the edit is checked, written
//! to the descriptor file and in force for the next statement (a new `pii`
//! tag masks its column at once); anyone else is refused and learns
//! nothing of products they cannot read; the server keeps serving.

use meshgate_planner::ProductDescriptor;
use meshgate_tests::extra_user;

use super::{texts, PRODUCTS_POLICY};
use crate::attacks::{admin_client, attack_mesh_with, flight, flight_query, simple_rows};

/// carol of the claims team may edit the claims product and read claims.
const EDIT_GRANT: &str = r#"
[[grants]]
effect = "allow"
principals = ["user:carol"]
tables = ["claims.public.*"]

[[grants]]
effect = "allow"
principals = ["user:carol"]
privilege = "edit_product"
tables = ["claims.*"]
"#;

/// `descriptor` changed by `change`, as YAML.
fn with(descriptor: &ProductDescriptor, change: impl FnOnce(&mut ProductDescriptor)) -> String {
    let mut changed = descriptor.clone();
    change(&mut changed);
    changed.to_yaml()
}

#[tokio::test]
async fn owners_edit_their_products_descriptors_as_the_policy_allows() {
    let policy = format!("{PRODUCTS_POLICY}{EDIT_GRANT}");
    let mesh = attack_mesh_with(&policy, |config| {
        config.push_str(&extra_user("carol", "carol-pw"));
    })
    .await;
    let analyst = mesh.pg("analyst").await;
    // A prepared statement planned before the edit.
    let amounts = analyst
        .prepare("SELECT amount FROM claims.public.claims ORDER BY claim_id LIMIT 1")
        .await
        .unwrap();
    let before: Option<rust_decimal::Decimal> =
        analyst.query_one(&amounts, &[]).await.unwrap().get(0);
    assert!(before.is_some());

    let mut carol = admin_client(&mesh, "carol").await;
    let current = carol.get_product("claims").await.unwrap();
    let mut descriptor = ProductDescriptor::from_yaml(&current.yaml).unwrap();
    assert_eq!(descriptor.name, "claims");
    // The claims team declares `amount` personal data and rewords the product.
    descriptor.description = Some("Claims as filed: amounts in USD.".into());
    let amount = descriptor.tables[0]
        .columns
        .iter_mut()
        .find(|c| c.name == "amount")
        .unwrap();
    amount.tags.push("pii".into());
    let edited = descriptor.to_yaml();
    let version = carol
        .apply_product("claims", edited.clone(), current.version)
        .await
        .unwrap();
    assert_eq!(version, current.version + 1);

    // In force for the next statement on an open session, on every protocol,
    // prepared statements included.
    let after: Option<rust_decimal::Decimal> =
        analyst.query_one(&amounts, &[]).await.unwrap().get(0);
    assert_eq!(after, None, "the new pii tag masks amount");
    let described = simple_rows(
        &analyst,
        "SELECT description FROM system.data_products WHERE name = 'claims'",
    )
    .await
    .unwrap();
    assert_eq!(
        described[0][0].as_deref(),
        Some("Claims as filed: amounts in USD.")
    );
    let mut flight_analyst = flight(&mesh, "analyst").await;
    let masked = flight_query(
        &mut flight_analyst,
        "SELECT CAST(amount AS VARCHAR) FROM claims.public.claims LIMIT 1",
    )
    .await
    .unwrap();
    assert_eq!(texts(&masked, 0), [None::<String>]);
    // Written to the catalog's descriptor file, where a restart reads it.
    let file = std::fs::read_to_string(mesh.mesh.data_dir().join("claims/products.yaml")).unwrap();
    assert!(file.contains("Claims as filed"), "{file}");

    // A stale version, a bad key, a promise the source does not keep and a
    // rename are refused, and change nothing.
    let stale = carol
        .apply_product("claims", edited.clone(), current.version)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted, "{stale:?}");
    let bad_key = carol
        .apply_product("claims", edited.replace("owner:", "owners:"), 0)
        .await
        .unwrap_err();
    assert_eq!(bad_key.code(), tonic::Code::InvalidArgument);
    assert!(bad_key.message().contains("owners"), "{bad_key:?}");
    let broken = carol
        .apply_product(
            "claims",
            with(&descriptor, |d| {
                d.tables[0].columns[5].name = "state".into()
            }),
            0,
        )
        .await
        .unwrap_err();
    assert_eq!(broken.code(), tonic::Code::InvalidArgument);
    assert!(broken.message().contains("state"), "{broken:?}");
    let renamed = carol
        .apply_product(
            "claims",
            with(&descriptor, |d| d.name = "claims2".into()),
            0,
        )
        .await
        .unwrap_err();
    assert_eq!(renamed.code(), tonic::Code::InvalidArgument, "{renamed:?}");
    assert_eq!(
        carol.get_product("claims").await.unwrap().version,
        version,
        "refused edits change nothing"
    );

    // Not carol's product: members she cannot read does not exist for her;
    // the analyst may read claims but not edit it; the intruder learns nothing.
    let members = carol.get_product("members").await.unwrap_err();
    assert_eq!(members.code(), tonic::Code::NotFound, "{members:?}");
    let mut analyst_admin = admin_client(&mesh, "analyst").await;
    let refused = analyst_admin
        .apply_product("claims", current.yaml.clone(), 0)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let mut intruder = admin_client(&mesh, "intruder").await;
    for name in ["claims", "members", "no_such_product"] {
        let hidden = intruder.get_product(name).await.unwrap_err();
        assert_eq!(hidden.code(), tonic::Code::NotFound, "{name}: {hidden:?}");
    }
    // Policy admins may edit any product.
    let mut admin = admin_client(&mesh, "admin").await;
    let providers = admin.get_product("providers").await.unwrap();
    admin
        .apply_product("providers", providers.yaml, providers.version)
        .await
        .unwrap();
    // Every call was audited with the product it concerned.
    let audit = mesh.audit_text();
    assert!(
        audit.contains("admin ApplyProduct claims") && audit.contains("\"decision\":\"denied\""),
        "{audit}"
    );
    mesh.assert_serving().await;
}
