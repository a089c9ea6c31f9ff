//! Checksums of source files: md5 because that is what the data sets publish, sha256
//! because it is what a record of a run should rely on.

use super::DataError;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The size and digests of one byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub bytes: u64,
    pub md5: String,
    pub sha256: String,
}

/// Both digests, updated together so that a file is read once.
#[derive(Default, Clone)]
pub struct Hasher {
    md5: Md5,
    sha256: Sha256,
    bytes: u64,
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha256.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn finish(self) -> FileDigest {
        FileDigest {
            bytes: self.bytes,
            md5: hex(&self.md5.finalize()),
            sha256: hex(&self.sha256.finalize()),
        }
    }
}

/// The digests of bytes already in memory.
pub fn of_bytes(data: &[u8]) -> FileDigest {
    let mut hasher = Hasher::default();
    hasher.update(data);
    hasher.finish()
}

/// The sha256 alone, for the members of a folder tree.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The digests of a file, read in 1 MiB pieces.
pub fn of_file(path: &Path) -> Result<FileDigest, DataError> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut reader = HashingReader::new(file);
    io::copy(&mut reader, &mut io::sink()).map_err(|e| DataError::read(path, e))?;
    Ok(reader.finish())
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reader that hashes what passes through it, so that an archive is checked in the
/// same pass that decompresses it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// Reads what is left (an archive's padding after its last member) and returns the
    /// digests of the whole stream.
    pub fn finish_stream(mut self) -> io::Result<FileDigest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.finish())
    }

    /// The digests of what has been read so far.
    pub fn finish(self) -> FileDigest {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_abc_match_the_published_test_vectors() {
        let digest = of_bytes(b"abc");
        assert_eq!(digest.bytes, 3);
        assert_eq!(digest.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            digest.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_hashing_reader_sees_every_byte() {
        let data = vec![7u8; 100_000];
        let mut reader = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.finish_stream().unwrap(), of_bytes(&data));
    }
}
