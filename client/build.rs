//! Generates the gRPC types, client and (feature `server`) server stubs from
//! `proto/`, with `protox` so that no system `protoc` is needed.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let proto = proto_root.join("users/v1/users.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    // Source info keeps the .proto comments, so they become rustdoc and show
    // up through server reflection.
    let descriptors = protox::Compiler::new([&proto_root])?
        .include_source_info(true)
        .include_imports(true)
        .open_file(&proto)?
        .file_descriptor_set();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("users_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_server(env::var_os("CARGO_FEATURE_SERVER").is_some())
        .compile_fds(descriptors)?;
    Ok(())
}
