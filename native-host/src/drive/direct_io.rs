//! Fragment files written and read around the page cache (`O_DIRECT`).
//!
//! Why: a fragment is written once and read rarely (a download, a repair, a
//! scrub), so caching it only evicts what the user's programs cached; and
//! copying it into the page cache was the costliest step of storing it on a
//! virtual machine that hands freed memory back to its host, where every
//! new page-cache page faults in the hypervisor first (a 1 GiB upload spent
//! a fifth of both cores' time in that copy; `dd` of 1 GiB ran at 0.4 GB/s
//! into new pages against 4 GB/s into recycled ones). With `O_DIRECT` the
//! disk moves the bytes to and from one buffer this thread keeps.
//!
//! ```text
//! write: bytes ─▶ whole 4 KiB blocks ─▶ this thread's aligned buffer ─▶ O_DIRECT write
//!              └▶ the tail (< 4 KiB) ─▶ O_DIRECT cleared ─▶ ordinary write
//! read:  O_DIRECT read of whole blocks (the last one short at the end of
//!        the file) ─▶ this thread's aligned buffer ─▶ the bytes
//! ```
//!
//! A filesystem without `O_DIRECT` (tmpfs, some FUSE ones), a block size
//! above 4 KiB, or a system other than Linux gets ordinary reads and
//! writes: the bytes are the same either way, and durability is still the
//! store's `sync` (which also commits the file's size and blocks). The
//! kernel keeps the two ways coherent (a direct read first writes back the
//! cached tail a write left).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The alignment `O_DIRECT` asks of offsets, lengths and the buffer: 4 KiB
/// covers 512-byte and 4 KiB logical blocks.
const BLOCK: usize = 4096;

/// Creates `path` (which must not exist) for writing, mode 0600, with
/// `O_DIRECT` where the filesystem takes it.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    #[cfg(target_os = "linux")]
    {
        let direct = options.clone().custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32).open(path);
        match direct {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            other => return other,
        }
    }
    options.open(path)
}

/// Writes all of `bytes` to a file from [`create_new`], at its start.
pub fn write_all(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let whole = bytes.len() / BLOCK * BLOCK;
        if whole > 0 && is_direct(file)? {
            match aligned::write(file, &bytes[..whole]) {
                Ok(()) => {
                    set_direct(file, false)?;
                    return file.write_all(&bytes[whole..]);
                }
                // A filesystem that opened with O_DIRECT and then wants
                // another alignment: nothing was written.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
                Err(e) => return Err(e),
            }
        }
        if is_direct(file)? {
            set_direct(file, false)?;
        }
    }
    file.write_all(bytes)
}

/// The whole of the file at `path`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    #[cfg(target_os = "linux")]
    {
        let direct = OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32).open(path);
        match direct {
            Ok(mut file) => match aligned::read(&mut file) {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
                other => return other,
            },
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    fs::read(path)
}

#[cfg(target_os = "linux")]
fn is_direct(file: &File) -> io::Result<bool> {
    Ok(rustix::fs::fcntl_getfl(file)?.contains(rustix::fs::OFlags::DIRECT))
}

#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let mut flags = rustix::fs::fcntl_getfl(file)?;
    flags.set(rustix::fs::OFlags::DIRECT, on);
    Ok(rustix::fs::fcntl_setfl(file, flags)?)
}

/// The aligned buffer each writing thread keeps (as large as the largest
/// fragment it wrote: a few hundred KiB), so its pages stay mapped.
#[cfg(target_os = "linux")]
mod aligned {
    use std::cell::RefCell;
    use std::fs::File;
    use std::io::{self, Read, Write};

    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

    use super::BLOCK;

    #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
    #[repr(C, align(4096))]
    struct Block([u8; BLOCK]);

    thread_local! {
        static BUFFER: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    }

    /// Writes `bytes` (a whole number of blocks) through the buffer.
    pub fn write(file: &mut File, bytes: &[u8]) -> io::Result<()> {
        BUFFER.with_borrow_mut(|buffer| {
            let blocks = bytes.len() / BLOCK;
            if buffer.len() < blocks {
                buffer.resize(blocks, Block([0; BLOCK]));
            }
            let staged = &mut buffer[..blocks].as_mut_bytes()[..bytes.len()];
            staged.copy_from_slice(bytes);
            file.write_all(staged)
        })
    }

    /// Reads all of `file` (opened `O_DIRECT`, at its start) through the
    /// buffer.
    pub fn read(file: &mut File) -> io::Result<Vec<u8>> {
        let len = usize::try_from(file.metadata()?.len()).map_err(|_| io::ErrorKind::FileTooLarge)?;
        // One block more than the size says, so a file that grew meanwhile
        // is read to its end (and then seen damaged by its id), not cut.
        let blocks = len / BLOCK + 1;
        BUFFER.with_borrow_mut(|buffer| {
            if buffer.len() < blocks {
                buffer.resize(blocks, Block([0; BLOCK]));
            }
            let space = buffer[..blocks].as_mut_bytes();
            let mut filled = 0;
            loop {
                // Each read starts on a block boundary: only the last, at
                // the end of the file, comes back short.
                let got = file.read(&mut space[filled..])?;
                filled += got;
                if got == 0 || !filled.is_multiple_of(BLOCK) {
                    return Ok(space[..filled].to_vec());
                }
                if filled == space.len() {
                    // Longer than the buffer: the rest the ordinary way.
                    let mut bytes = space.to_vec();
                    super::set_direct(file, false)?;
                    file.read_to_end(&mut bytes)?;
                    return Ok(bytes);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(dir: &Path) {
        for len in [0, 1, 4095, 4096, 4097, 3 * 4096, 262_148, 1 << 20] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let path = dir.join(format!("fragment-{len}"));
            let mut file = create_new(&path).unwrap();
            write_all(&mut file, &bytes).unwrap();
            drop(file);
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} bytes on disk as written");
            assert_eq!(read(&path).unwrap(), bytes, "{len} bytes read back as written");
            assert!(create_new(&path).is_err(), "never overwrites");
        }
    }

    #[test]
    fn every_length_reads_back_as_written_on_a_disk() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(dir.path());
    }

    #[test]
    fn every_length_reads_back_as_written_where_o_direct_is_refused() {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        round_trip(dir.path());
    }

    #[test]
    fn a_whole_file_is_read_and_a_missing_one_is_said_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3 * 4096 + 10).map(|i| i as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap(), bytes);
        assert!(matches!(read(&dir.path().join("absent")), Err(e) if e.kind() == io::ErrorKind::NotFound));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_on_a_disk_is_opened_direct() {
        let dir = tempfile::tempdir().unwrap();
        let file = create_new(&dir.path().join("f")).unwrap();
        // Where the temp dir is on tmpfs, the fallback is what is tested.
        let on_tmpfs = rustix::fs::statfs(dir.path()).is_ok_and(|s| s.f_type == 0x0102_1994);
        assert!(is_direct(&file).unwrap() || on_tmpfs);
    }
}
