//! Compile the `.proto` files with protox (pure Rust: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "meshgate/admin/v1/policy_admin.proto",
        "meshgate/admin/v1/product_admin.proto",
        "meshgate/admin/v1/catalog_admin.proto",
        "arrow/flight/session.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
