//! The scratch filesystem: one directory per install, preopened as `/scratch` through
//! wasmtime-wasi (cap-std: `..` and symlinks cannot leave it), with a byte quota that
//! wasmtime-wasi lacks. This module wraps `wasi:filesystem/types`: every call goes to
//! wasmtime-wasi's implementation, and the ones that grow files are charged first.
//!
//! Growth by positioned writes and `set-size` is charged exactly; bytes written through
//! streams are charged as written (an overwrite in place counts again). Every entry
//! (file, directory, link) also counts against an entry quota and costs
//! [`ENTRY_METADATA_BYTES`] of the byte quota, so empty files and deep trees are not
//! free. Usage is measured from the directory at the start of every invocation, so the
//! quotas are exact across invocations and conservative within one (a rename over an
//! existing file is not refunded).
//!
//! Host-side, an invocation holds at most [`MAX_OPEN_DESCRIPTORS`] open files (each is
//! an OS file descriptor of the server) and [`MAX_DIRECTORY_STREAMS`] directory listings
//! (wasmtime-wasi reads a whole directory into memory when a listing starts).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    Filesize, HostDescriptor, HostDirectoryEntryStream, MetadataHashValue, NewTimestamp, OpenFlags,
    PathFlags,
};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, FsError, FsResult, OutputStream, Pollable, StreamError,
    StreamResult,
};

use crate::denial::{DenialKind, DenialLog};
use crate::error::HostResourceExceeded;
use crate::state::HostState;

/// Where the scratch directory appears inside the guest.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// What one directory entry costs of the byte quota: about an inode and its name.
pub const ENTRY_METADATA_BYTES: u64 = 512;

/// Files (OS descriptors) one invocation may hold open at once.
pub const MAX_OPEN_DESCRIPTORS: u64 = 64;

/// Directory listings one invocation may hold at once.
pub const MAX_DIRECTORY_STREAMS: u64 = 4;

/// The byte and entry budgets of one invocation's scratch directory, and its open
/// handles.
pub(crate) struct ScratchQuota {
    limit: u64,
    used: AtomicU64,
    entries_limit: u64,
    entries: AtomicU64,
    open_descriptors: AtomicU64,
    open_listings: AtomicU64,
    denials: DenialLog,
}

impl ScratchQuota {
    /// Quotas of `limit` bytes and `entries_limit` entries for `dir`, whose current
    /// contents already count.
    pub(crate) fn measure(dir: &Path, limit: u64, entries_limit: u64, denials: DenialLog) -> Self {
        let usage = dir_usage(dir);
        Self {
            limit,
            used: AtomicU64::new(usage.bytes),
            entries_limit,
            entries: AtomicU64::new(usage.entries),
            open_descriptors: AtomicU64::new(0),
            open_listings: AtomicU64::new(0),
            denials,
        }
    }

    /// Bytes counted so far (for the metering record).
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Entries counted so far (for the metering record).
    pub(crate) fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Charges one new entry: its count and its metadata bytes.
    fn charge_entry(&self) -> Result<(), ()> {
        let counted = self
            .entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                n.checked_add(1)
                    .filter(|total| *total <= self.entries_limit)
            });
        if let Err(n) = counted {
            self.denials.record(
                DenialKind::ScratchEntries,
                format!(
                    "one more file or directory would pass the scratch quota of {} entries ({n} used)",
                    self.entries_limit
                ),
            );
            return Err(());
        }
        self.charge(ENTRY_METADATA_BYTES).inspect_err(|()| {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        })
    }

    fn refund_entry(&self) {
        let _ = self
            .entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        self.refund(ENTRY_METADATA_BYTES);
    }

    /// Takes one of `limit` slots of `counter`, or fails the invocation naming `resource`.
    fn hold(counter: &AtomicU64, limit: u64, resource: &'static str) -> FsResult<()> {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                n.checked_add(1).filter(|total| *total <= limit)
            })
            .map(drop)
            .map_err(|_| FsError::trap(HostResourceExceeded { resource, limit }))
    }

    fn release(counter: &AtomicU64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
    }

    fn charge(&self, bytes: u64) -> Result<(), ()> {
        let charged = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            });
        match charged {
            Ok(_) => Ok(()),
            Err(used) => {
                self.denials.record(
                    DenialKind::ScratchQuota,
                    format!(
                        "writing {bytes} more bytes would pass the scratch quota of {} bytes ({used} used)",
                        self.limit
                    ),
                );
                Err(())
            }
        }
    }

    fn refund(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }
}

#[derive(Default)]
struct DirUsage {
    bytes: u64,
    entries: u64,
}

/// Regular file sizes plus [`ENTRY_METADATA_BYTES`] per entry, and the entry count,
/// under `dir`, not following symlinks.
fn dir_usage(dir: &Path) -> DirUsage {
    let mut usage = DirUsage::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return usage;
    };
    for entry in entries.flatten() {
        usage.entries += 1;
        usage.bytes += ENTRY_METADATA_BYTES;
        match entry.metadata() {
            Ok(m) if m.is_dir() => {
                let inner = dir_usage(&entry.path());
                usage.entries += inner.entries;
                usage.bytes += inner.bytes;
            }
            Ok(m) if m.is_file() => usage.bytes += m.len(),
            _ => {}
        }
    }
    usage
}

/// wasmtime-wasi's filesystem view plus this invocation's quota.
pub(crate) struct ScratchFs<'a> {
    inner: WasiFilesystemCtxView<'a>,
    quota: Option<Arc<ScratchQuota>>,
    denials: DenialLog,
}

/// `HasData` marker for linking [`ScratchFs`].
pub(crate) struct ScratchFsData;

impl HasData for ScratchFsData {
    type Data<'a> = ScratchFs<'a>;
}

/// The getter used when linking `wasi:filesystem/types`.
pub(crate) fn scratch_fs(state: &mut HostState) -> ScratchFs<'_> {
    let quota = state.scratch.clone();
    let denials = state.invocation.denials.clone();
    ScratchFs {
        inner: state.filesystem(),
        quota,
        denials,
    }
}

fn no_space() -> FsError {
    ErrorCode::InsufficientSpace.into()
}

fn borrow(fd: &Resource<types::Descriptor>) -> Resource<types::Descriptor> {
    Resource::new_borrow(fd.rep())
}

impl ScratchFs<'_> {
    /// Charges the growth from the file's current size to `end`; returns that size when a
    /// quota applies.
    async fn charge_growth(
        &mut self,
        fd: &Resource<types::Descriptor>,
        end: u64,
    ) -> FsResult<Option<u64>> {
        let Some(quota) = self.quota.clone() else {
            return Ok(None);
        };
        let size = self.inner.stat(borrow(fd)).await?.size;
        let growth = end.saturating_sub(size);
        if growth > 0 {
            quota.charge(growth).map_err(|()| no_space())?;
        }
        Ok(Some(size))
    }

    /// Charges a new entry when a quota applies; ENOSPC past it, as a full disk says.
    fn charge_entry(&self) -> FsResult<()> {
        match &self.quota {
            Some(quota) => quota.charge_entry().map_err(|()| no_space()),
            None => Ok(()),
        }
    }

    /// Gives back the entry charged for a call that failed.
    fn refund_entry_unless_ok<T>(&self, result: FsResult<T>) -> FsResult<T> {
        if result.is_err()
            && let Some(quota) = &self.quota
        {
            quota.refund_entry();
        }
        result
    }

    /// Records attempts to leave the directory: cap-std refuses them as not-permitted.
    fn note_escape<T>(&self, path: &str, result: FsResult<T>) -> FsResult<T> {
        if let Err(e) = &result
            && matches!(
                e.downcast_ref(),
                Some(ErrorCode::NotPermitted | ErrorCode::Access)
            )
        {
            self.denials.record(
                DenialKind::ScratchEscape,
                format!("path `{path}` leads outside the scratch directory"),
            );
        }
        result
    }

    fn wrap_stream(
        &mut self,
        stream: FsResult<Resource<DynOutputStream>>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = stream?;
        let Some(quota) = self.quota.clone() else {
            return Ok(stream);
        };
        let inner = self.inner.table.delete(stream)?;
        let wrapped: DynOutputStream = Box::new(QuotaStream { inner, quota });
        Ok(self.inner.table.push(wrapped)?)
    }
}

impl types::Host for ScratchFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for ScratchFs<'_> {
    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        self.inner.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.inner.sync_data(fd).await
    }

    async fn get_flags(&mut self, fd: Resource<types::Descriptor>) -> FsResult<DescriptorFlags> {
        self.inner.get_flags(fd).await
    }

    async fn get_type(&mut self, fd: Resource<types::Descriptor>) -> FsResult<DescriptorType> {
        self.inner.get_type(fd).await
    }

    async fn set_size(&mut self, fd: Resource<types::Descriptor>, size: Filesize) -> FsResult<()> {
        let before = self.charge_growth(&fd, size).await?;
        self.inner.set_size(fd, size).await?;
        if let (Some(quota), Some(before)) = (&self.quota, before) {
            quota.refund(before.saturating_sub(size));
        }
        Ok(())
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        self.inner.set_times(fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        self.inner.read(fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        self.charge_growth(&fd, offset.saturating_add(buf.len() as u64))
            .await?;
        self.inner.write(fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        let Some(quota) = self.quota.clone() else {
            return self.inner.read_directory(fd).await;
        };
        ScratchQuota::hold(
            &quota.open_listings,
            MAX_DIRECTORY_STREAMS,
            "open directory listings",
        )?;
        let result = self.inner.read_directory(fd).await;
        if result.is_err() {
            ScratchQuota::release(&quota.open_listings);
        }
        result
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.inner.sync(fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.charge_entry()?;
        let result = self.inner.create_directory_at(fd, path.clone()).await;
        let result = self.refund_entry_unless_ok(result);
        self.note_escape(&path, result)
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<DescriptorStat> {
        self.inner.stat(fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        let result = self.inner.stat_at(fd, path_flags, path.clone()).await;
        self.note_escape(&path, result)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        self.inner
            .set_times_at(fd, path_flags, path, atim, mtim)
            .await
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.charge_entry()?;
        let result = self
            .inner
            .link_at(
                fd,
                old_path_flags,
                old_path.clone(),
                new_descriptor,
                new_path,
            )
            .await;
        let result = self.refund_entry_unless_ok(result);
        self.note_escape(&old_path, result)
    }

    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        let Some(quota) = self.quota.clone() else {
            return self
                .inner
                .open_at(fd, path_flags, path, oflags, flags)
                .await;
        };
        ScratchQuota::hold(
            &quota.open_descriptors,
            MAX_OPEN_DESCRIPTORS,
            "open file descriptors",
        )?;
        // A create that makes a new file is a new entry; one that opens an existing
        // file is not.
        let creates = oflags.contains(OpenFlags::CREATE)
            && self
                .inner
                .stat_at(borrow(&fd), PathFlags::empty(), path.clone())
                .await
                .is_err();
        if creates && quota.charge_entry().is_err() {
            ScratchQuota::release(&quota.open_descriptors);
            return Err(no_space());
        }
        let result = self
            .inner
            .open_at(fd, path_flags, path.clone(), oflags, flags)
            .await;
        if result.is_err() {
            ScratchQuota::release(&quota.open_descriptors);
            if creates {
                quota.refund_entry();
            }
        }
        self.note_escape(&path, result)
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        if let Some(quota) = &self.quota {
            ScratchQuota::release(&quota.open_descriptors);
        }
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        self.inner.readlink_at(fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.inner.remove_directory_at(fd, path).await?;
        if let Some(quota) = &self.quota {
            quota.refund_entry();
        }
        Ok(())
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let result = self
            .inner
            .rename_at(fd, old_path, new_fd, new_path.clone())
            .await;
        self.note_escape(&new_path, result)
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        self.charge_entry()?;
        let result = self.inner.symlink_at(fd, src_path.clone(), dest_path).await;
        let result = self.refund_entry_unless_ok(result);
        self.note_escape(&src_path, result)
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let size = match self
            .inner
            .stat_at(borrow(&fd), PathFlags::empty(), path.clone())
            .await
        {
            Ok(stat) if stat.type_ == DescriptorType::RegularFile => stat.size,
            _ => 0,
        };
        self.inner.unlink_file_at(fd, path).await?;
        if let Some(quota) = &self.quota {
            quota.refund(size);
            quota.refund_entry();
        }
        Ok(())
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        self.inner.read_via_stream(fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = self.inner.write_via_stream(fd, offset);
        self.wrap_stream(stream)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = self.inner.append_via_stream(fd);
        self.wrap_stream(stream)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        self.inner.is_same_object(a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<MetadataHashValue> {
        self.inner.metadata_hash(fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        self.inner.metadata_hash_at(fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for ScratchFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        self.inner.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        if let Some(quota) = &self.quota {
            ScratchQuota::release(&quota.open_listings);
        }
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

/// A file output stream whose bytes are charged to the quota before they are queued.
struct QuotaStream {
    inner: DynOutputStream,
    quota: Arc<ScratchQuota>,
}

/// ENOSPC: the guest's libc reports "no space left on device".
const ENOSPC: i32 = 28;

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.quota.charge(bytes.len() as u64).map_err(|()| {
            StreamError::LastOperationFailed(std::io::Error::from_raw_os_error(ENOSPC).into())
        })?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}
