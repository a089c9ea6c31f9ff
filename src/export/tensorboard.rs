//! TensorBoard event files, written without TensorFlow: each file is a sequence of records
//! framed as TFRecord (`u64 length`, `u32 masked crc32c(length)`, `data`,
//! `u32 masked crc32c(data)`, little-endian), each record an `Event` protocol buffer:
//!
//! ```text
//! message Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! message Summary { repeated Value value = 1; }
//! message Value   { string tag = 1; float simple_value = 2; }
//! ```
//!
//! The first event carries `file_version = "brain.Event:2"`, then one event per epoch holds
//! that epoch's scalars.

/// An event file being assembled in memory.
#[derive(Debug, Default)]
pub struct EventFile {
    bytes: Vec<u8>,
}

impl EventFile {
    /// A file that starts with the version event, stamped `wall_time`.
    pub fn new(wall_time: f64) -> Self {
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time);
        put_bytes(&mut event, 3, b"brain.Event:2");
        let mut file = EventFile::default();
        file.push_record(&event);
        file
    }

    /// Appends one event with `scalars` (tag, value) at `step`.
    pub fn scalars(&mut self, wall_time: f64, step: i64, scalars: &[(&str, f64)]) {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_key(&mut v, 2, 5);
            v.extend_from_slice(&(*value as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time);
        put_key(&mut event, 2, 0);
        put_varint(&mut event, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.push_record(&event);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn push_record(&mut self, data: &[u8]) {
        let length = (data.len() as u64).to_le_bytes();
        self.bytes.extend_from_slice(&length);
        self.bytes
            .extend_from_slice(&masked_crc(&length).to_le_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes
            .extend_from_slice(&masked_crc(data).to_le_bytes());
    }
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_double(out: &mut Vec<u8>, field: u32, value: f64) {
    put_key(out, field, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// TFRecord's checksum: crc32c rotated right by 15 bits plus a constant, so that a crc of
/// data that itself contains crcs stays well distributed.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: event files are small.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    /// Splits a file back into its records, checking both checksums of each.
    fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let length: [u8; 8] = bytes[..8].try_into().unwrap();
            let crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            assert_eq!(crc, masked_crc(&length), "length checksum");
            let n = u64::from_le_bytes(length) as usize;
            let data = &bytes[12..12 + n];
            let crc = u32::from_le_bytes(bytes[12 + n..16 + n].try_into().unwrap());
            assert_eq!(crc, masked_crc(data), "data checksum");
            out.push(data.to_vec());
            bytes = &bytes[16 + n..];
        }
        out
    }

    #[test]
    fn an_event_file_holds_framed_records_with_valid_checksums() {
        let mut file = EventFile::new(1.5);
        file.scalars(2.0, 3, &[("val/acc", 0.5), ("train/loss", 1.25)]);
        let records = records(&file.into_bytes());
        assert_eq!(records.len(), 2);
        // version event: wall_time (key 0x09, 8 bytes), file_version (key 0x1a, length 13)
        assert_eq!(records[0][0], 0x09);
        assert_eq!(
            f64::from_le_bytes(records[0][1..9].try_into().unwrap()),
            1.5
        );
        assert_eq!(&records[0][9..11], &[0x1a, 13]);
        assert_eq!(&records[0][11..], b"brain.Event:2");
        // scalar event: wall_time, step 3 (key 0x10), summary (key 0x2a)
        let event = &records[1];
        assert_eq!(&event[9..11], &[0x10, 3]);
        assert_eq!(event[11], 0x2a);
        let summary = &event[13..];
        // first value: key 0x0a, length, tag key 0x0a, "val/acc", simple_value key 0x15
        assert_eq!(&summary[2..4], &[0x0a, 7]);
        assert_eq!(&summary[4..11], b"val/acc");
        assert_eq!(summary[11], 0x15);
        assert_eq!(f32::from_le_bytes(summary[12..16].try_into().unwrap()), 0.5);
    }

    #[test]
    fn varints_use_seven_bits_per_byte() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}
