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

    check_request_names(&descriptors)?;

    // Type names (prost's `Name`) let our codec tell requests from
    // responses; see `src/codec.rs`.
    let mut prost_config = prost_build::Config::new();
    prost_config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(env::var_os("CARGO_FEATURE_SERVER").is_some())
        .codec_path("crate::codec::UsersCodec")
        .compile_fds_with_config(descriptors, prost_config)?;
    Ok(())
}

/// `UsersCodec` blames an undecodable message on the caller when its name
/// ends in `Request`. That is right only if every RPC takes a `...Request`
/// and no RPC returns one, so the build fails otherwise.
fn check_request_names(
    descriptors: &prost_types::FileDescriptorSet,
) -> Result<(), Box<dyn std::error::Error>> {
    let methods = descriptors
        .file
        .iter()
        .filter(|file| file.package() == "users.v1")
        .flat_map(|file| &file.service)
        .flat_map(|service| &service.method);
    for method in methods {
        if !method.input_type().ends_with("Request") || method.output_type().ends_with("Request") {
            return Err(format!(
                "{}: UsersCodec needs every request type, and no response type, \
                 to be named ...Request (got {} -> {})",
                method.name(),
                method.input_type(),
                method.output_type()
            )
            .into());
        }
    }
    Ok(())
}
