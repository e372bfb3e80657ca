//! Where the registry keeps its blobs: content-addressed in an object store (a local
//! folder by default, S3-compatible by URL). Its metadata is in the host's database
//! (`hyyve-database`), whose pool it is given.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

use crate::error::RegistryError;
use crate::package::sha256;

/// Content-addressed blobs: `sha256/<hex>` holds the bytes whose digest that is.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl Blobs {
    /// A local folder (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::Config(format!("blob folder {}: {e}", dir.display())))?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
        })
    }

    /// A store named by URL: `file:///…`, `s3://bucket/prefix` (credentials and endpoint
    /// from the `AWS_*` environment variables, e.g. `AWS_ENDPOINT` for MinIO), `gs://`,
    /// `az://`… as `object_store` understands them.
    pub fn from_url(url: &str) -> Result<Self, RegistryError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| RegistryError::Config(format!("blob store URL `{url}`: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| RegistryError::Config(format!("blob store URL `{url}`")))?;
            return Self::local(&dir);
        }
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
        Ok(Self {
            store: Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
        })
    }

    fn path(digest: &str) -> BlobPath {
        BlobPath::from(format!(
            "sha256/{}",
            digest.strip_prefix("sha256:").unwrap_or(digest)
        ))
    }

    /// Stores `bytes` under their digest; storing the same bytes twice is one blob.
    pub async fn put(&self, bytes: &[u8]) -> Result<String, RegistryError> {
        let digest = sha256(bytes);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(
                &Self::path(&digest),
                PutPayload::from(bytes.to_vec()),
                options,
            )
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(digest),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of `digest`, checked against it: a blob changed at rest is an error.
    pub async fn get(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let bytes = match self.store.get(&Self::path(digest)).await {
            Ok(result) => result.bytes().await?.to_vec(),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(RegistryError::NotFound(format!("blob {digest}")));
            }
            Err(e) => return Err(e.into()),
        };
        if sha256(&bytes) != digest {
            return Err(RegistryError::DigestMismatch {
                file: format!("blob {digest}"),
            });
        }
        Ok(bytes)
    }

    /// Removes a blob (missing is fine).
    pub async fn delete(&self, digest: &str) -> Result<(), RegistryError> {
        match self.store.delete(&Self::path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Number of blobs stored (for checks that nothing was left behind).
    pub async fn count(&self) -> Result<usize, RegistryError> {
        use futures_util::TryStreamExt as _;
        let all: Vec<_> = self.store.list(None).try_collect().await?;
        Ok(all.len())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
