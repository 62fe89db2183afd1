//! The on-disk format: a segment header, then framed, checksummed records.
//!
//! ```text
//! segment = HEADER record*
//! record  = MAGIC len:u32le crc:u32le payload[len]      crc = CRC-32 (IEEE) of payload
//! ```
//!
//! Pure functions over bytes, no I/O: [`scan`] never panics on any input
//! and resynchronises on the next `MAGIC` after damage.

/// The first bytes of every segment file.
pub(crate) const HEADER: &[u8; 8] = b"TIDWAL01";
/// The first bytes of every record.
const MAGIC: &[u8; 4] = b"TWR1";
/// Bytes before a record's payload.
pub(crate) const FRAME_LEN: usize = MAGIC.len() + 4 + 4;
/// The largest payload a record may hold; a longer length is damage.
pub(crate) const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// Appends one record to `out`, its payload written in place by
/// `payload`; returns the payload's length, or `None` (and `out` as it
/// was) when it is over [`MAX_PAYLOAD`].
pub(crate) fn frame(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) -> Option<usize> {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 8]); // length and checksum, once known
    payload(out);
    let len = out.len() - start - FRAME_LEN;
    if len > MAX_PAYLOAD {
        out.truncate(start);
        return None;
    }
    let crc = crc32fast::hash(&out[start + FRAME_LEN..]);
    let len32 = u32::try_from(len).expect("under MAX_PAYLOAD");
    out[start + 4..start + 8].copy_from_slice(&len32.to_le_bytes());
    out[start + 8..start + FRAME_LEN].copy_from_slice(&crc.to_le_bytes());
    Some(len)
}

/// What [`scan`] finds in a segment, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// An intact record: its payload, and where its frame starts.
    Record {
        /// The byte offset of the record's frame in the segment.
        offset: usize,
        /// The payload.
        payload: &'a [u8],
    },
    /// Bytes that are not an intact record (a torn write at the tail, or
    /// damage inside), skipped up to the next intact record or the end.
    Damaged {
        /// Where the damaged bytes start.
        offset: usize,
        /// How many bytes were skipped.
        len: usize,
    },
}

/// The records of one segment's bytes, header included. Bytes where the
/// header should be that are not a header are one [`Item::Damaged`]
/// region (none if a record starts right there). Damaged regions are
/// never empty.
#[must_use]
pub fn scan(segment: &[u8]) -> Scan<'_> {
    let start = if segment.starts_with(HEADER) {
        HEADER.len()
    } else {
        0
    };
    Scan {
        bytes: segment,
        at: start,
        header_bad: start == 0 && !segment.is_empty(),
    }
}

/// The iterator [`scan`] returns.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    header_bad: bool,
}

impl Scan<'_> {
    /// The record starting exactly at `at`, and where the next one would start.
    fn record_at(&self, at: usize) -> Option<(&[u8], usize)> {
        let frame = self.bytes.get(at..at.checked_add(FRAME_LEN)?)?;
        if &frame[..MAGIC.len()] != MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(frame[4..8].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(frame[8..12].try_into().ok()?);
        if len > MAX_PAYLOAD {
            return None;
        }
        let start = at + FRAME_LEN;
        let payload = self.bytes.get(start..start.checked_add(len)?)?;
        (crc32fast::hash(payload) == crc).then_some((payload, start + len))
    }

    /// The offset of the next intact record at or after `from`, if any.
    fn resync(&self, from: usize) -> Option<usize> {
        let mut from = from;
        while let Some(found) = memchr::memmem::find(self.bytes.get(from..)?, MAGIC) {
            let at = from + found;
            if self.record_at(at).is_some() {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

impl<'a> Iterator for Scan<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if self.header_bad {
            self.header_bad = false;
            let end = self.resync(0).unwrap_or(self.bytes.len());
            self.at = end;
            if end > 0 {
                return Some(Item::Damaged {
                    offset: 0,
                    len: end,
                });
            }
            // No header, but a record right at the start: read it.
        }
        if self.at >= self.bytes.len() {
            return None;
        }
        let offset = self.at;
        if let Some((_, next)) = self.record_at(offset) {
            let payload: &'a [u8] = &self.bytes[offset + FRAME_LEN..next];
            self.at = next;
            return Some(Item::Record { offset, payload });
        }
        let end = self.resync(offset + 1).unwrap_or(self.bytes.len());
        self.at = end;
        Some(Item::Damaged {
            offset,
            len: end - offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for p in payloads {
            frame(&mut out, |o| o.extend_from_slice(p));
        }
        out
    }

    fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
        scan(bytes)
            .filter_map(|item| match item {
                Item::Record { payload, .. } => Some(payload.to_vec()),
                Item::Damaged { .. } => None,
            })
            .collect()
    }

    #[test]
    fn intact_records_come_back_in_order() {
        let bytes = segment(&[b"one", b"", b"three"]);
        assert_eq!(records(&bytes), [&b"one"[..], b"", b"three"]);
        assert!(scan(&bytes).all(|i| matches!(i, Item::Record { .. })));
        assert_eq!(scan(HEADER).count(), 0);
        assert_eq!(scan(b"").count(), 0);
    }

    #[test]
    fn a_torn_tail_is_one_damaged_region_after_the_intact_records() {
        let whole = segment(&[b"first", b"second record"]);
        for cut in HEADER.len() + FRAME_LEN + 5 + 1..whole.len() {
            let items: Vec<_> = scan(&whole[..cut]).collect();
            assert_eq!(
                items[0],
                Item::Record {
                    offset: HEADER.len(),
                    payload: b"first"
                },
                "cut at {cut}"
            );
            assert_eq!(items.len(), 2, "cut at {cut}: {items:?}");
            assert!(matches!(items[1], Item::Damaged { len, .. } if len > 0));
        }
    }

    #[test]
    fn damage_inside_is_skipped_up_to_the_next_intact_record() {
        let mut bytes = segment(&[b"aaaa", b"bbbb", b"cccc"]);
        let second_payload = HEADER.len() + (FRAME_LEN + 4) + FRAME_LEN;
        bytes[second_payload] ^= 0xff; // checksum no longer matches
        let items: Vec<_> = scan(&bytes).collect();
        assert_eq!(records(&bytes), [b"aaaa", b"cccc"]);
        assert!(matches!(items[1], Item::Damaged { len, .. } if len == FRAME_LEN + 4));
    }

    #[test]
    fn a_bad_header_is_damage_but_later_records_are_read() {
        let mut bytes = segment(&[b"kept"]);
        bytes[0] = b'X';
        let items: Vec<_> = scan(&bytes).collect();
        assert!(matches!(items[0], Item::Damaged { offset: 0, len } if len == HEADER.len()));
        assert_eq!(records(&bytes), [b"kept"]);
    }

    #[test]
    fn a_record_where_the_header_should_be_is_read_with_no_empty_damage() {
        // Found by the wal_scan fuzz target: it once gave a damaged region of 0 bytes.
        let mut bytes = Vec::new();
        frame(&mut bytes, |o| o.extend_from_slice(b"[]"));
        assert_eq!(
            scan(&bytes).collect::<Vec<_>>(),
            [Item::Record {
                offset: 0,
                payload: b"[]"
            }]
        );
    }

    proptest! {
        #[test]
        fn scanning_any_bytes_covers_them_exactly_once(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut covered = if bytes.starts_with(HEADER) { HEADER.len() } else { 0 };
            for item in scan(&bytes) {
                match item {
                    Item::Record { offset, payload } => {
                        prop_assert_eq!(offset, covered);
                        covered += FRAME_LEN + payload.len();
                    }
                    Item::Damaged { offset, len } => {
                        prop_assert_eq!(offset, covered);
                        prop_assert!(len > 0);
                        covered += len;
                    }
                }
            }
            prop_assert_eq!(covered, bytes.len());
        }

        #[test]
        fn records_survive_garbage_around_them(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..5),
            garbage in proptest::collection::vec(any::<u8>(), 1..32),
        ) {
            let mut bytes = HEADER.to_vec();
            for p in &payloads {
                frame(&mut bytes, |o| o.extend_from_slice(p));
                bytes.extend_from_slice(&garbage);
            }
            prop_assert_eq!(records(&bytes), payloads);
        }
    }
}
