//! The node home: one directory per node holding its keys, config, logs,
//! the engine lock and the control socket.
//!
//! Chosen by `--home DIR`, else `$MAILMESH_HOME`, else the platform data
//! directory (`~/.local/share/mailmesh` on Linux). The directory is mode
//! 0700 so that nothing in it — in particular the control socket — is
//! reachable by other users.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HomeError {
    #[error("no home directory given and no platform data directory found; pass --home DIR or set MAILMESH_HOME")]
    NoDefault,
    #[error("cannot create the node home {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
}

/// Paths inside one node home.
#[derive(Clone, Debug)]
pub struct NodeHome {
    root: PathBuf,
}

impl NodeHome {
    /// The home a command should use: the flag (already merged with
    /// `$MAILMESH_HOME` by clap), else the platform default.
    pub fn resolve(flag: Option<&Path>) -> Result<NodeHome, HomeError> {
        let root = match flag {
            Some(p) => absolute(p),
            None => default_root().ok_or(HomeError::NoDefault)?,
        };
        Ok(NodeHome { root })
    }

    pub fn at(root: impl Into<PathBuf>) -> NodeHome {
        NodeHome { root: absolute(&root.into()) }
    }

    /// Whether this is the platform default home (then no wrapper script is
    /// needed for the browser to find it).
    pub fn is_default(&self) -> bool {
        default_root().as_deref() == Some(self.root.as_path())
    }

    /// Creates the home (mode 0700) and its log directory if missing, and
    /// tightens the mode of an existing home that is too open.
    pub fn ensure(&self) -> Result<(), HomeError> {
        for dir in [&self.root, &self.logs_dir()] {
            fs::create_dir_all(dir).map_err(|source| HomeError::Create { path: dir.clone(), source })?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|source| HomeError::Create { path: dir.clone(), source })?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn key_file(&self) -> PathBuf {
        self.root.join("node.key")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("engine.sock")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("engine.lock")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn engine_log(&self) -> PathBuf {
        self.logs_dir().join("engine.log")
    }
    pub fn bridge_log(&self) -> PathBuf {
        self.logs_dir().join("native-host.log")
    }
    /// The script browsers start when this home is not the default one.
    pub fn host_wrapper(&self) -> PathBuf {
        self.root.join("native-host.sh")
    }
}

fn default_root() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("mailmesh"))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Writes `bytes` to `path` atomically with the given mode: a temporary file
/// in the same directory, fsync, then rename, so a crash never leaves a
/// half-written key or config behind. Each call has a temp file of its own
/// (a dot file, which directory scans skip): two writers of one path, such
/// as an import and a member storing the same fragment, never truncate or
/// rename each other's. The directory is synced after the rename, so the new
/// name survives a power cut too.
pub fn write_private(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new().prefix(".").suffix(".tmp").tempfile_in(dir)?;
    // Set explicitly: a mode given at creation is filtered by the umask.
    file.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable: until the directory itself is synced, a
/// power cut can bring back the old name (or none) even though the file's
/// bytes were synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Opens (creating it, mode 0600) a file to append to.
pub fn open_private_append(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path)
}
