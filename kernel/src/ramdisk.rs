//! The process images packed into the disk image: a tar archive the bootloader
//! loads as its ramdisk, one ELF file per SiON process, named by file name.
#![forbid(unsafe_code)]

use spin::Once;
use tar_no_std::TarArchiveRef;

static ARCHIVE: Once<Option<TarArchiveRef<'static>>> = Once::new();

/// Opens the archive. A missing or corrupt ramdisk leaves the node without
/// processes and says so.
pub fn init(bytes: &'static [u8]) {
    ARCHIVE.call_once(|| {
        if bytes.is_empty() {
            log::warn!("no ramdisk: the disk image carries no process images");
            return None;
        }
        match TarArchiveRef::new(bytes) {
            Ok(archive) => Some(archive),
            Err(e) => {
                log::error!("ramdisk is not a valid tar archive: {e:?}");
                None
            }
        }
    });
}

/// The file holding the cluster key (`sion-image --key`), if any; not a
/// process image.
pub const CLUSTER_KEY: &str = "cluster.key";

/// The ELF image of process `name`, if the disk image carries it.
pub fn find(name: &str) -> Option<&'static [u8]> {
    let archive = ARCHIVE.get()?.as_ref()?;
    archive
        .entries()
        .find(|e| e.filename().as_str().ok() == Some(name))
        .map(|e| e.data())
}

/// How many process images the disk image carries.
pub fn count() -> usize {
    ARCHIVE.get().and_then(|a| a.as_ref()).map_or(0, |a| {
        a.entries()
            .filter(|e| e.filename().as_str().ok() != Some(CLUSTER_KEY))
            .count()
    })
}
