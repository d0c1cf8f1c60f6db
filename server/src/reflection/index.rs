//! [`Descriptors`]: the files reflection serves, indexed once at start-up by
//! file name, symbol and extension.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use prost::Message;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
};

use super::encoded;

/// Files that tonic's crates compile under bare names, by package and that
/// name, with the path that clients import them by, and so ask for them by
/// (grpcurl asks for `grpc/health/v1/health.proto`).
const CANONICAL_NAMES: &[(&str, &str, &str)] = &[
    (
        "grpc.health.v1",
        "health.proto",
        "grpc/health/v1/health.proto",
    ),
    ("google.rpc", "status.proto", "google/rpc/status.proto"),
    (
        "google.rpc",
        "error_details.proto",
        "google/rpc/error_details.proto",
    ),
    (
        "grpc.reflection.v1",
        "reflection_v1.proto",
        "grpc/reflection/v1/reflection.proto",
    ),
    (
        "grpc.reflection.v1alpha",
        "reflection_v1alpha.proto",
        "grpc/reflection/v1alpha/reflection.proto",
    ),
];

/// Why the descriptors cannot be served: a bug in the build, since they are
/// compiled in.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// A descriptor set, or a file in it, is not valid protobuf.
    #[error("undecodable file descriptor: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A file without a name could not be asked for, nor imported.
    #[error("a file descriptor has no name")]
    Unnamed,
    /// A client given `file` would ask for `dependency` and not get it.
    #[error("{file} imports {dependency}, which is not served")]
    MissingDependency {
        /// The importing file.
        file: String,
        /// The name it imports, which no served file has.
        dependency: String,
    },
}

/// A file in [`Descriptors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FileId(usize);

struct File {
    name: String,
    /// As served: the original bytes, with only the names that
    /// [`CANONICAL_NAMES`] changes rewritten, so that custom options survive.
    encoded: Vec<u8>,
    /// What it imports, so that a client is sent everything it needs.
    dependencies: Vec<FileId>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("name", &self.name)
            .field("encoded_len", &self.encoded.len())
            .field("dependencies", &self.dependencies)
            .finish()
    }
}

/// The served files and what they declare.
#[derive(Debug, Default)]
pub(super) struct Descriptors {
    files: Vec<File>,
    by_name: HashMap<String, FileId>,
    /// Messages (nested ones too), their fields and oneofs, enums and their
    /// values, services, methods and extensions, by full name without the
    /// leading dot.
    symbols: HashMap<String, FileId>,
    /// Every message type's extensions by number. A type without extensions
    /// has an empty entry: it is known, unlike a type with no entry.
    extensions: HashMap<String, BTreeMap<i32, FileId>>,
    /// Sorted, for list_services.
    services: Vec<String>,
}

impl Descriptors {
    /// Indexes the files of the encoded `FileDescriptorSet`s `sets`. A file
    /// name seen twice keeps its first file: well-known files such as
    /// `google/protobuf/any.proto` may come in several sets.
    pub(super) fn new(sets: &[&[u8]]) -> Result<Self, DescriptorError> {
        let mut descriptors = Self::default();
        let mut imports = Vec::new();
        for set in sets {
            let files = encoded::files(set)?
                .into_iter()
                .map(|encoded| Ok((encoded, FileDescriptorProto::decode(encoded)?)))
                .collect::<Result<Vec<_>, DescriptorError>>()?;
            // By old name. Only within the set: its files were compiled
            // together, so a dependency's name there means a file there.
            let renames: HashMap<String, &'static str> = files
                .iter()
                .filter_map(|(_, file)| Some((file.name().to_owned(), canonical_name(file)?)))
                .collect();
            for (encoded, mut file) in files {
                let encoded = encoded::renamed(encoded, |name| renames.get(name).copied())?;
                for name in file.name.iter_mut().chain(&mut file.dependency) {
                    if let Some(&canonical) = renames.get(name.as_str()) {
                        *name = canonical.to_owned();
                    }
                }
                if let Some(dependencies) = descriptors.add(encoded, &file)? {
                    imports.push(dependencies);
                }
            }
        }
        descriptors.link(imports)?;
        descriptors.services.sort();
        Ok(descriptors)
    }

    /// Adds `file` unless one of its name is there; returns its imports.
    fn add(
        &mut self,
        encoded: Vec<u8>,
        file: &FileDescriptorProto,
    ) -> Result<Option<Vec<String>>, DescriptorError> {
        let name = file.name.clone().ok_or(DescriptorError::Unnamed)?;
        if self.by_name.contains_key(&name) {
            return Ok(None);
        }
        let id = FileId(self.files.len());
        self.by_name.insert(name.clone(), id);
        self.files.push(File {
            name,
            encoded,
            dependencies: Vec::new(),
        });
        self.declare_file(id, file);
        Ok(Some(file.dependency.clone()))
    }

    /// Resolves `imports`, each file's imported names in file order.
    fn link(&mut self, imports: Vec<Vec<String>>) -> Result<(), DescriptorError> {
        for (id, names) in imports.into_iter().enumerate() {
            let dependencies = names
                .into_iter()
                .map(|dependency| {
                    self.by_name.get(&dependency).copied().ok_or_else(|| {
                        DescriptorError::MissingDependency {
                            file: self.files[id].name.clone(),
                            dependency,
                        }
                    })
                })
                .collect::<Result<_, _>>()?;
            self.files[id].dependencies = dependencies;
        }
        Ok(())
    }

    fn declare_file(&mut self, id: FileId, file: &FileDescriptorProto) {
        let package = file.package();
        for message in &file.message_type {
            self.declare_message(id, package, message);
        }
        for enum_type in &file.enum_type {
            self.declare_enum(id, package, enum_type);
        }
        for extension in &file.extension {
            self.declare_extension(id, package, extension);
        }
        for service in &file.service {
            let service_name = full_name(package, service.name());
            for method in &service.method {
                self.declare(id, full_name(&service_name, method.name()));
            }
            self.services.push(service_name.clone());
            self.declare(id, service_name);
        }
    }

    fn declare_message(&mut self, id: FileId, scope: &str, message: &DescriptorProto) {
        let name = full_name(scope, message.name());
        self.extensions.entry(name.clone()).or_default();
        for field in &message.field {
            self.declare(id, full_name(&name, field.name()));
        }
        for oneof in &message.oneof_decl {
            self.declare(id, full_name(&name, oneof.name()));
        }
        for nested in &message.nested_type {
            self.declare_message(id, &name, nested);
        }
        for enum_type in &message.enum_type {
            self.declare_enum(id, &name, enum_type);
        }
        for extension in &message.extension {
            self.declare_extension(id, &name, extension);
        }
        self.declare(id, name);
    }

    fn declare_enum(&mut self, id: FileId, scope: &str, enum_type: &EnumDescriptorProto) {
        // Protobuf names values as siblings of their enum; some clients
        // ask for them inside it (`...ServingStatus.SERVING`): both lead to
        // the file.
        let name = full_name(scope, enum_type.name());
        for value in &enum_type.value {
            self.declare(id, full_name(scope, value.name()));
            self.declare(id, full_name(&name, value.name()));
        }
        self.declare(id, name);
    }

    fn declare_extension(&mut self, id: FileId, scope: &str, extension: &FieldDescriptorProto) {
        let extendee = extension.extendee().trim_start_matches('.').to_owned();
        self.extensions
            .entry(extendee)
            .or_default()
            .entry(extension.number())
            .or_insert(id);
        self.declare(id, full_name(scope, extension.name()));
    }

    fn declare(&mut self, id: FileId, symbol: String) {
        self.symbols.entry(symbol).or_insert(id);
    }

    /// The file named `name`, as clients import it.
    pub(super) fn file_named(&self, name: &str) -> Option<FileId> {
        self.by_name.get(name).copied()
    }

    /// The file declaring `symbol`, a full name without the leading dot.
    pub(super) fn file_declaring(&self, symbol: &str) -> Option<FileId> {
        self.symbols.get(symbol).copied()
    }

    /// The file declaring extension `number` of `message`.
    pub(super) fn file_extending(&self, message: &str, number: i32) -> Option<FileId> {
        self.extensions.get(message)?.get(&number).copied()
    }

    /// The extension numbers of `message`, ascending; `None` if no such
    /// message type is served.
    pub(super) fn extension_numbers(&self, message: &str) -> Option<Vec<i32>> {
        Some(self.extensions.get(message)?.keys().copied().collect())
    }

    /// Every service the files declare, sorted.
    pub(super) fn services(&self) -> &[String] {
        &self.services
    }

    /// `file` as served: an encoded `FileDescriptorProto`.
    pub(super) fn encoded(&self, file: FileId) -> &[u8] {
        &self.files[file.0].encoded
    }

    /// What `file` imports.
    pub(super) fn dependencies(&self, file: FileId) -> &[FileId] {
        &self.files[file.0].dependencies
    }
}

/// The name `file` must be served under, if not the one it was compiled
/// with.
fn canonical_name(file: &FileDescriptorProto) -> Option<&'static str> {
    CANONICAL_NAMES
        .iter()
        .find(|&&(package, name, _)| file.package() == package && file.name() == name)
        .map(|&(_, _, canonical)| canonical)
}

fn full_name(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use prost_types::{FieldDescriptorProto, FileDescriptorSet};

    use super::*;

    /// The sets the server serves, with reflection's own.
    fn served() -> Descriptors {
        Descriptors::new(&[
            users_client::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_types::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])
        .unwrap()
    }

    fn decoded(descriptors: &Descriptors, file: FileId) -> FileDescriptorProto {
        FileDescriptorProto::decode(descriptors.encoded(file)).unwrap()
    }

    fn set(files: Vec<FileDescriptorProto>) -> Vec<u8> {
        FileDescriptorSet { file: files }.encode_to_vec()
    }

    fn file(package: &str, name: &str, dependencies: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            dependency: dependencies.iter().map(|&name| name.into()).collect(),
            ..Default::default()
        }
    }

    fn message(name: &str) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn health_is_served_under_its_canonical_name_only() {
        let descriptors = served();
        let health = descriptors
            .file_named("grpc/health/v1/health.proto")
            .unwrap();
        assert_eq!(
            decoded(&descriptors, health).name(),
            "grpc/health/v1/health.proto"
        );
        assert_eq!(descriptors.file_named("health.proto"), None);
        assert_eq!(
            descriptors.file_declaring("grpc.health.v1.Health"),
            Some(health)
        );
    }

    #[test]
    fn every_file_is_named_by_its_package_path() {
        let descriptors = served();
        for (name, &id) in &descriptors.by_name {
            let file = decoded(&descriptors, id);
            assert_eq!(file.name(), name);
            let directory = file.package().replace('.', "/") + "/";
            assert!(name.starts_with(&directory), "{name} in {}", file.package());
        }
        for name in [
            "users/v1/users.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/any.proto",
            "google/protobuf/duration.proto",
            "google/rpc/status.proto",
            "google/rpc/error_details.proto",
            "grpc/reflection/v1/reflection.proto",
            "grpc/reflection/v1alpha/reflection.proto",
        ] {
            assert!(descriptors.file_named(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_users_file_is_served_byte_for_byte() {
        let descriptors = served();
        let original = encoded::files(users_client::pb::FILE_DESCRIPTOR_SET)
            .unwrap()
            .into_iter()
            .find(|file| {
                FileDescriptorProto::decode(*file).unwrap().name() == "users/v1/users.proto"
            })
            .unwrap();
        let users = descriptors.file_named("users/v1/users.proto").unwrap();
        assert_eq!(descriptors.encoded(users), original);
    }

    #[test]
    fn symbols_of_every_kind_lead_to_their_file() {
        let descriptors = served();
        let users = descriptors.file_named("users/v1/users.proto");
        let health = descriptors.file_named("grpc/health/v1/health.proto");
        for (symbol, file) in [
            ("users.v1.UserService", users),
            ("users.v1.UserService.CreateUser", users),
            ("users.v1.CreateUserRequest", users),
            ("users.v1.CreateUserRequest.name", users),
            ("grpc.health.v1.HealthCheckResponse", health),
            ("grpc.health.v1.HealthCheckResponse.ServingStatus", health),
            ("grpc.health.v1.HealthCheckResponse.SERVING", health),
            (
                "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING",
                health,
            ),
            (
                "google.protobuf.Timestamp",
                descriptors.file_named("google/protobuf/timestamp.proto"),
            ),
            (
                "google.rpc.ErrorInfo",
                descriptors.file_named("google/rpc/error_details.proto"),
            ),
        ] {
            assert!(file.is_some());
            assert_eq!(descriptors.file_declaring(symbol), file, "{symbol}");
        }
        assert_eq!(descriptors.file_declaring("users.v1.NoSuchThing"), None);
        assert_eq!(descriptors.file_declaring(".users.v1.UserService"), None);
    }

    #[test]
    fn services_are_ours_health_and_reflection() {
        assert_eq!(
            served().services(),
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "users.v1.UserService",
            ]
        );
    }

    #[test]
    fn importers_of_a_renamed_file_import_the_new_name() {
        let importer = file("ours.v1", "ours/v1/checks.proto", &["health.proto"]);
        let descriptors = Descriptors::new(&[&set(vec![
            file("grpc.health.v1", "health.proto", &[]),
            importer,
        ])])
        .unwrap();
        let importer = descriptors.file_named("ours/v1/checks.proto").unwrap();
        let health = descriptors
            .file_named("grpc/health/v1/health.proto")
            .unwrap();
        assert_eq!(
            decoded(&descriptors, importer).dependency,
            ["grpc/health/v1/health.proto"]
        );
        assert_eq!(descriptors.dependencies(importer), [health]);
    }

    #[test]
    fn extensions_are_found_by_type_and_number() {
        let extension = |name: &str, number| FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            extendee: Some(".a.Base".into()),
            ..Default::default()
        };
        let mut base = file("a", "a/base.proto", &[]);
        base.message_type = vec![message("Base"), message("Plain")];
        let mut extending = file("b", "b/extending.proto", &["a/base.proto"]);
        extending.extension = vec![extension("far", 200)];
        extending.message_type = vec![DescriptorProto {
            extension: vec![extension("near", 100)],
            ..message("Holder")
        }];
        let descriptors = Descriptors::new(&[&set(vec![base, extending])]).unwrap();

        let extending = descriptors.file_named("b/extending.proto");
        assert_eq!(
            descriptors.extension_numbers("a.Base"),
            Some(vec![100, 200])
        );
        assert_eq!(descriptors.extension_numbers("a.Plain"), Some(vec![]));
        assert_eq!(descriptors.extension_numbers("a.Nothing"), None);
        assert_eq!(descriptors.file_extending("a.Base", 100), extending);
        assert_eq!(descriptors.file_extending("a.Base", 300), None);
        assert_eq!(descriptors.file_declaring("b.Holder.near"), extending);
        assert_eq!(descriptors.file_declaring("b.far"), extending);
    }

    #[test]
    fn a_file_seen_twice_keeps_the_first() {
        let mut first = file("a", "a/a.proto", &[]);
        first.message_type = vec![message("First")];
        let mut second = file("a", "a/a.proto", &[]);
        second.message_type = vec![message("Second")];
        let descriptors = Descriptors::new(&[&set(vec![first]), &set(vec![second])]).unwrap();
        assert_eq!(descriptors.files.len(), 1);
        assert!(descriptors.file_declaring("a.First").is_some());
        assert_eq!(descriptors.file_declaring("a.Second"), None);
    }

    #[test]
    fn descriptors_that_cannot_be_served_are_errors() {
        let unimported = set(vec![file("a", "a/a.proto", &["a/gone.proto"])]);
        assert!(matches!(
            Descriptors::new(&[&unimported]),
            Err(DescriptorError::MissingDependency { file, dependency })
                if file == "a/a.proto" && dependency == "a/gone.proto"
        ));
        let unnamed = set(vec![FileDescriptorProto::default()]);
        assert!(matches!(
            Descriptors::new(&[&unnamed]),
            Err(DescriptorError::Unnamed)
        ));
        assert!(matches!(
            Descriptors::new(&[&[0x0a, 0x05, 0x01]]),
            Err(DescriptorError::Decode(_))
        ));
    }
}
