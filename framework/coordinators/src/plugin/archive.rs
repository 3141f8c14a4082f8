//! Plugin sources: SHA-256 digests of an archive or a directory tree, and safe unpacking or
//! copying into a staging directory.
//!
//! A directory's digest covers its sorted relative paths and file contents, so the same tree
//! always has the same digest wherever it lies. Symbolic links, device files and paths that
//! leave the target are refused, in directories and archives alike.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest unpacked size accepted from one source.
pub const MAX_SOURCE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {0} does not exist")]
    Missing(PathBuf),
    #[error("source {path}: {why}")]
    Refused { path: PathBuf, why: String },
    #[error("source {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

fn refused(path: &Path, why: impl Into<String>) -> SourceError {
    SourceError::Refused {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// What a source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Directory,
    /// `.tar.gz` / `.tgz`
    TarGz,
    /// `.tar`
    Tar,
}

pub fn kind(path: &Path) -> Result<SourceKind, SourceError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SourceError::Missing(path.to_owned())
        } else {
            SourceError::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    })?;
    if meta.is_dir() {
        return Ok(SourceKind::Directory);
    }
    if !meta.is_file() {
        return Err(refused(path, "is neither a directory nor a regular file"));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Ok(SourceKind::TarGz)
    } else if name.ends_with(".tar") {
        Ok(SourceKind::Tar)
    } else {
        Err(refused(path, "archives must be .tar.gz, .tgz or .tar"))
    }
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> Result<u64, SourceError> {
    let mut f = BufReader::new(File::open(path).map_err(io(path))?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
}

/// Regular files and directories of a tree, sorted by relative path (`/`-separated).
fn walk(root: &Path) -> Result<Vec<(String, PathBuf, bool)>, SourceError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(io(&path))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| refused(&path, "file names must be UTF-8"))?;
            let rel_child = rel.join(name);
            let key = rel_child
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if ty.is_dir() {
                stack.push(rel_child);
                out.push((key, path, true));
            } else if ty.is_file() {
                out.push((key, path, false));
            } else {
                return Err(refused(
                    &path,
                    "symbolic links and special files are not allowed",
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The hex SHA-256 of a source: the archive's bytes, or the directory tree digest.
pub fn digest(path: &Path) -> Result<String, SourceError> {
    let mut h = Sha256::new();
    match kind(path)? {
        SourceKind::Tar | SourceKind::TarGz => {
            hash_file(path, &mut h)?;
        }
        SourceKind::Directory => {
            let mut total = 0u64;
            for (key, p, is_dir) in walk(path)? {
                if is_dir {
                    h.update(b"D\0");
                    h.update(key.as_bytes());
                    h.update(b"\0");
                } else {
                    let len = std::fs::metadata(&p).map_err(io(&p))?.len();
                    total += len;
                    if total > MAX_SOURCE_BYTES {
                        return Err(refused(path, "larger than the size limit"));
                    }
                    h.update(b"F\0");
                    h.update(key.as_bytes());
                    h.update(b"\0");
                    h.update(len.to_le_bytes());
                    hash_file(&p, &mut h)?;
                }
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Put the contents of `source` into the (existing, empty) directory `target`.
pub fn materialise(source: &Path, target: &Path) -> Result<(), SourceError> {
    match kind(source)? {
        SourceKind::Directory => {
            for (key, p, is_dir) in walk(source)? {
                let to = target.join(&key);
                if is_dir {
                    std::fs::create_dir_all(&to).map_err(io(&to))?;
                } else {
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent).map_err(io(parent))?;
                    }
                    std::fs::copy(&p, &to).map_err(io(&to))?;
                }
            }
            Ok(())
        }
        SourceKind::TarGz => {
            let f = File::open(source).map_err(io(source))?;
            unpack(
                source,
                tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f))),
                target,
            )
        }
        SourceKind::Tar => {
            let f = File::open(source).map_err(io(source))?;
            unpack(source, tar::Archive::new(BufReader::new(f)), target)
        }
    }
}

fn unpack<R: Read>(
    source: &Path,
    mut archive: tar::Archive<R>,
    target: &Path,
) -> Result<(), SourceError> {
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    let mut total = 0u64;
    for entry in archive.entries().map_err(io(source))? {
        let mut entry = entry.map_err(io(source))?;
        let path = entry.path().map_err(io(source))?.into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(refused(
                source,
                format!("entry {} leaves the plugin directory", path.display()),
            ));
        }
        let ty = entry.header().entry_type();
        if !(ty.is_file() || ty.is_dir()) {
            return Err(refused(
                source,
                format!(
                    "entry {} is not a regular file or directory",
                    path.display()
                ),
            ));
        }
        total += entry.header().size().map_err(io(source))?;
        if total > MAX_SOURCE_BYTES {
            return Err(refused(source, "larger than the size limit"));
        }
        let ok = entry.unpack_in(target).map_err(io(target))?;
        if !ok {
            return Err(refused(
                source,
                format!("entry {} was refused", path.display()),
            ));
        }
    }
    Ok(())
}

/// When an archive wraps its content in one top-level directory (as `tar czf x.tgz dir/`
/// does), the plugin root is that directory.
pub fn plugin_root(unpacked: &Path) -> Result<PathBuf, SourceError> {
    if unpacked.join(super::manifest::MANIFEST_FILE).is_file() {
        return Ok(unpacked.to_owned());
    }
    let entries: Vec<_> = std::fs::read_dir(unpacked)
        .map_err(io(unpacked))?
        .collect::<Result<_, _>>()
        .map_err(io(unpacked))?;
    if let [only] = entries.as_slice()
        && only.file_type().map_err(io(unpacked))?.is_dir()
    {
        return Ok(only.path());
    }
    Ok(unpacked.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("plugin.json"), "{}").unwrap();
        std::fs::write(dir.join("bin/run.sh"), "#!/bin/sh\n").unwrap();
    }

    #[test]
    fn directory_digest_is_stable_and_content_sensitive() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path());
        tree(b.path());
        let da = digest(a.path()).unwrap();
        assert_eq!(da.len(), 64);
        assert_eq!(da, digest(b.path()).unwrap());
        std::fs::write(b.path().join("bin/run.sh"), "#!/bin/sh\nx\n").unwrap();
        assert_ne!(da, digest(b.path()).unwrap());
    }

    #[test]
    fn archives_unpack_and_wrapping_directories_are_found() {
        let src = tempfile::tempdir().unwrap();
        tree(&src.path().join("pkg"));
        let out = tempfile::tempdir().unwrap();
        let tgz = out.path().join("p.tar.gz");
        {
            let f = File::create(&tgz).unwrap();
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut t = tar::Builder::new(gz);
            t.append_dir_all("pkg", src.path().join("pkg")).unwrap();
            t.into_inner().unwrap().finish().unwrap();
        }
        let target = out.path().join("unpacked");
        std::fs::create_dir(&target).unwrap();
        materialise(&tgz, &target).unwrap();
        let root = plugin_root(&target).unwrap();
        assert!(root.join("bin/run.sh").is_file());
        assert_eq!(
            digest(&root).unwrap(),
            digest(&src.path().join("pkg")).unwrap()
        );
    }

    #[test]
    fn symlinks_and_unknown_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("leak")).unwrap();
        assert!(matches!(digest(d.path()), Err(SourceError::Refused { .. })));
        let f = d.path().join("plugin.zip");
        std::fs::write(&f, "x").unwrap();
        assert!(matches!(kind(&f), Err(SourceError::Refused { .. })));
        assert!(matches!(
            kind(&d.path().join("nope")),
            Err(SourceError::Missing(_))
        ));
    }
}
