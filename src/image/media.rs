//! Media types (OCI and Docker v2 schema 2) and what each kind means to the reader. Layer compression is
//! never taken from the media type; it is sniffed from the bytes.
//!
//! The OCI media types are oci-spec's [`MediaType`]; Docker's v2 schema 2 spellings, which oci-spec
//! does not model as types, are the constants here.

use oci_spec::image::MediaType;

use super::Compression;

pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The layer media type for a blob of this `compression`, OCI or Docker v2 spelling.
pub fn layer_type(oci: bool, compression: Compression) -> &'static str {
    match (oci, compression) {
        (true, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
        (true, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (true, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (false, Compression::None) => DOCKER_LAYER,
        (false, Compression::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (false, Compression::Zstd) => "application/vnd.docker.image.rootfs.diff.tar.zstd",
    }
}

/// The compression a layer media type declares: `Some(None)` for a plain tar type, `None` when the
/// type does not say (empty, unknown spelling).
pub fn declared_compression(mt: &str) -> Option<Compression> {
    if !is_tar_layer(mt) || mt.is_empty() {
        return None;
    }
    match mt.rsplit(['+', '.']).next() {
        Some("gzip") => Some(Compression::Gzip),
        Some("zstd") => Some(Compression::Zstd),
        Some("tar") => Some(Compression::None),
        _ => None,
    }
}

/// What the bytes are, in words, for messages.
pub fn compression_words(c: Compression) -> &'static str {
    match c {
        Compression::None => "an uncompressed tar",
        Compression::Gzip => "gzip-compressed",
        Compression::Zstd => "zstd-compressed",
    }
}

/// An image index or Docker manifest list.
pub fn is_index(mt: &str) -> bool {
    MediaType::from(mt) == MediaType::ImageIndex || mt == DOCKER_LIST
}

/// An image manifest (OCI or Docker v2 schema 2).
pub fn is_manifest(mt: &str) -> bool {
    MediaType::from(mt) == MediaType::ImageManifest || mt == DOCKER_MANIFEST
}

/// A runnable image's config (an empty media type is accepted: some writers omit it).
pub fn is_image_config(mt: &str) -> bool {
    MediaType::from(mt) == MediaType::ImageConfig || mt == DOCKER_CONFIG || mt.is_empty()
}

/// A filesystem layer x1-validate reads as tar (compression sniffed separately).
pub fn is_tar_layer(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        && (mt.contains(".tar") || mt.ends_with("v1.tar"))
        && !mt.contains("+encrypted")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
        || mt.is_empty()
}

/// A filesystem layer of a kind x1-validate cannot read (squashfs, EROFS, encrypted): an error, not
/// an artifact to skip, so no image is silently reported as empty.
pub fn is_unsupported_layer(mt: &str) -> bool {
    mt.contains("squashfs") || mt.contains("erofs") || mt.contains("+encrypted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_documents() {
        assert!(is_index("application/vnd.oci.image.index.v1+json") && is_index(DOCKER_LIST));
        assert!(is_manifest("application/vnd.oci.image.manifest.v1+json"));
        assert!(is_manifest(DOCKER_MANIFEST) && !is_manifest(DOCKER_LIST));
        assert!(is_image_config("application/vnd.oci.image.config.v1+json"));
        assert!(is_image_config("") && !is_image_config("application/vnd.oci.empty.v1+json"));
    }

    #[test]
    fn classifies_layers() {
        assert!(is_tar_layer("application/vnd.oci.image.layer.v1.tar+zstd"));
        assert!(is_tar_layer(DOCKER_LAYER));
        assert!(is_tar_layer(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        ));
        assert!(!is_tar_layer(
            "application/vnd.dev.cosign.simplesigning.v1+json"
        ));
        assert!(!is_tar_layer(
            "application/vnd.sylabs.image.layer.v1.squashfs"
        ));
        assert!(is_unsupported_layer(
            "application/vnd.sylabs.image.layer.v1.squashfs"
        ));
        assert!(!is_tar_layer(
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
        ));
    }

    #[test]
    fn declared_compression_round_trips() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for oci in [true, false] {
                assert_eq!(declared_compression(layer_type(oci, c)), Some(c));
            }
        }
        assert_eq!(declared_compression(""), None);
        assert_eq!(
            declared_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
    }
}
