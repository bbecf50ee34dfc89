//! On-disk formats of the embedded directory store: journal records and
//! snapshots.
//!
//! Choice: a hand-written append-only journal rather than an embedded
//! database (redb). The directory's data is a small set of record types
//! whose whole state lives in memory anyway (the lookup index must be), so
//! the store only needs "append durably, replay on start". A journal with
//! one fsync per group of records costs the same fsync as a database
//! commit, adds no dependency, and a compact snapshot lets 10 million IDs
//! load in seconds.
//!
//! Journal file `journal.<gen>`: an 8-byte magic, then frames
//! `[u32 payload length][u32 CRC32 of payload][payload]` (little endian).
//! A payload is one transaction: `[u64 sequence][u32 delta count][deltas]`.
//! A frame that is short, fails its CRC or does not decode ends the valid
//! part of the journal: everything from there on is a torn or corrupt tail.
//!
//! Snapshot file `snapshot.<gen>`: magic, id length, generation, last
//! sequence, the deltas that rebuild the state, then `[u64 delta count]`
//! and a CRC32 of everything before it. It holds the state before
//! `journal.<gen>`; it is written to a temporary file, fsynced and renamed.

use super::service::IdMode;
use super::ConferenceId;
use std::sync::Arc;

/// First bytes of a journal file.
pub(crate) const JOURNAL_MAGIC: &[u8; 8] = b"DGDJRNL1";
/// First bytes of a snapshot file.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"DGDSNAP1";
/// Frames above this size are treated as corrupt. (Nothing is allocated
/// from a length before the announced bytes are known to be present.)
pub(crate) const MAX_FRAME: usize = 256 << 20;
/// Strings above this size are corrupt.
const MAX_STR: usize = 64 * 1024;

/// An organizer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OrgRec {
    pub id: Arc<str>,
    pub display_name: String,
    pub email: String,
    pub leader_pin: Option<String>,
    pub mode: IdMode,
    pub conference_id: Option<ConferenceId>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// When the current static ID was assigned.
    pub id_since_ms: u64,
}

/// A dynamic meeting as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MeetingRec {
    pub id: Arc<str>,
    pub organizer: Arc<str>,
    pub conference_id: ConferenceId,
    /// The meeting's end (without grace).
    pub expires_ms: Option<u64>,
    pub created_ms: u64,
}

/// One state change. An operation is a list of deltas written as one frame,
/// so it is applied entirely or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delta {
    /// Creates or replaces an organizer (and activates its static ID).
    PutOrganizer(OrgRec),
    DelOrganizer(Arc<str>),
    /// Creates a meeting (and activates its ID).
    PutMeeting(MeetingRec),
    DelMeeting(Arc<str>),
    /// Retires an ID (reset or delete).
    Tombstone {
        id: ConferenceId,
        organizer: Arc<str>,
        at_ms: u64,
        quarantined_until_ms: u64,
    },
}

impl Delta {
    /// The conference ID this delta activates or retires, if any.
    pub(crate) fn conference_id(&self) -> Option<ConferenceId> {
        match self {
            Delta::PutOrganizer(o) => o.conference_id,
            Delta::PutMeeting(m) => Some(m.conference_id),
            Delta::Tombstone { id, .. } => Some(*id),
            Delta::DelOrganizer(_) | Delta::DelMeeting(_) => None,
        }
    }
}

const TAG_PUT_ORG: u8 = 1;
const TAG_DEL_ORG: u8 = 2;
const TAG_PUT_MEETING: u8 = 3;
const TAG_DEL_MEETING: u8 = 4;
const TAG_TOMBSTONE: u8 = 5;

fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings are validated to be short long before they get here.
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s.as_bytes());
}
fn put_id(out: &mut Vec<u8>, id: ConferenceId) {
    put_u8(out, id.len() as u8);
    put_u64(out, id.value());
}
fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            put_u8(out, 1);
            put_u64(out, v);
        }
        None => put_u8(out, 0),
    }
}

/// Appends the encoding of an organizer record.
pub(crate) fn put_org(out: &mut Vec<u8>, o: &OrgRec) {
    put_u8(out, TAG_PUT_ORG);
    put_str(out, &o.id);
    put_str(out, &o.display_name);
    put_str(out, &o.email);
    match &o.leader_pin {
        Some(p) => {
            put_u8(out, 1);
            put_str(out, p);
        }
        None => put_u8(out, 0),
    }
    put_u8(
        out,
        match o.mode {
            IdMode::Static => 0,
            IdMode::Dynamic => 1,
        },
    );
    match o.conference_id {
        Some(id) => {
            put_u8(out, 1);
            put_id(out, id);
        }
        None => put_u8(out, 0),
    }
    put_u64(out, o.created_ms);
    put_u64(out, o.updated_ms);
    put_u64(out, o.id_since_ms);
}

/// Appends the encoding of a meeting record.
pub(crate) fn put_meeting(out: &mut Vec<u8>, m: &MeetingRec) {
    put_u8(out, TAG_PUT_MEETING);
    put_str(out, &m.id);
    put_str(out, &m.organizer);
    put_id(out, m.conference_id);
    put_opt_u64(out, m.expires_ms);
    put_u64(out, m.created_ms);
}

/// Appends the encoding of a tombstone.
pub(crate) fn put_tombstone(
    out: &mut Vec<u8>,
    id: ConferenceId,
    organizer: &str,
    at_ms: u64,
    quarantined_until_ms: u64,
) {
    put_u8(out, TAG_TOMBSTONE);
    put_id(out, id);
    put_str(out, organizer);
    put_u64(out, at_ms);
    put_u64(out, quarantined_until_ms);
}

/// Appends the encoding of one delta.
pub(crate) fn put_delta(out: &mut Vec<u8>, d: &Delta) {
    match d {
        Delta::PutOrganizer(o) => put_org(out, o),
        Delta::DelOrganizer(id) => {
            put_u8(out, TAG_DEL_ORG);
            put_str(out, id);
        }
        Delta::PutMeeting(m) => put_meeting(out, m),
        Delta::DelMeeting(id) => {
            put_u8(out, TAG_DEL_MEETING);
            put_str(out, id);
        }
        Delta::Tombstone {
            id,
            organizer,
            at_ms,
            quarantined_until_ms,
        } => put_tombstone(out, *id, organizer, *at_ms, *quarantined_until_ms),
    }
}

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecodeError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(what.into()))
}

/// A bounds-checked reader over a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => bad("unexpected end of data"),
        }
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u32()? as usize;
        if len > MAX_STR {
            return bad(format!("string of {len} bytes"));
        }
        let b = self.take(len)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(_) => bad("string is not UTF-8"),
        }
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }
    fn arc_str(&mut self) -> Result<Arc<str>, DecodeError> {
        self.str().map(Arc::from)
    }
    fn id(&mut self) -> Result<ConferenceId, DecodeError> {
        let len = self.u8()?;
        let value = self.u64()?;
        match ConferenceId::from_value(value, usize::from(len)) {
            Some(id) => Ok(id),
            None => bad(format!("invalid conference ID {value}/{len}")),
        }
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            t => bad(format!("option tag {t}")),
        }
    }

    /// Reads one delta.
    pub(crate) fn delta(&mut self) -> Result<Delta, DecodeError> {
        match self.u8()? {
            TAG_PUT_ORG => {
                let id = self.arc_str()?;
                let display_name = self.string()?;
                let email = self.string()?;
                let leader_pin = match self.u8()? {
                    0 => None,
                    1 => Some(self.string()?),
                    t => return bad(format!("pin tag {t}")),
                };
                let mode = match self.u8()? {
                    0 => IdMode::Static,
                    1 => IdMode::Dynamic,
                    t => return bad(format!("mode {t}")),
                };
                let conference_id = match self.u8()? {
                    0 => None,
                    1 => Some(self.id()?),
                    t => return bad(format!("id tag {t}")),
                };
                Ok(Delta::PutOrganizer(OrgRec {
                    id,
                    display_name,
                    email,
                    leader_pin,
                    mode,
                    conference_id,
                    created_ms: self.u64()?,
                    updated_ms: self.u64()?,
                    id_since_ms: self.u64()?,
                }))
            }
            TAG_DEL_ORG => Ok(Delta::DelOrganizer(self.arc_str()?)),
            TAG_PUT_MEETING => Ok(Delta::PutMeeting(MeetingRec {
                id: self.arc_str()?,
                organizer: self.arc_str()?,
                conference_id: self.id()?,
                expires_ms: self.opt_u64()?,
                created_ms: self.u64()?,
            })),
            TAG_DEL_MEETING => Ok(Delta::DelMeeting(self.arc_str()?)),
            TAG_TOMBSTONE => Ok(Delta::Tombstone {
                id: self.id()?,
                organizer: self.arc_str()?,
                at_ms: self.u64()?,
                quarantined_until_ms: self.u64()?,
            }),
            t => bad(format!("unknown delta tag {t}")),
        }
    }
}

/// Appends one journal frame holding transaction `seq`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, seq: u64, deltas: &[Delta]) {
    let start = out.len();
    put_u32(out, 0);
    put_u32(out, 0);
    put_u64(out, seq);
    put_u32(out, u32::try_from(deltas.len()).unwrap_or(u32::MAX));
    for d in deltas {
        put_delta(out, d);
    }
    let payload_len = out.len() - start - 8;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The outcome of reading a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalScan {
    /// Bytes from the file start that hold whole, valid frames.
    pub valid_len: u64,
    /// Transactions found.
    pub records: u64,
    /// Sequence of the last valid transaction.
    pub last_seq: Option<u64>,
    /// What was wrong with the bytes after `valid_len`, if any.
    pub problem: Option<String>,
}

/// Reads the frames of a journal file's bytes, calling `apply` for each
/// valid transaction in order. Stops at the first invalid frame: nothing
/// from a torn or corrupt frame (or after it) is ever passed on.
pub(crate) fn scan_journal(
    bytes: &[u8],
    min_seq: u64,
    mut apply: impl FnMut(u64, Vec<Delta>),
) -> JournalScan {
    let mut scan = JournalScan {
        valid_len: 0,
        records: 0,
        last_seq: None,
        problem: None,
    };
    if bytes.len() < JOURNAL_MAGIC.len() {
        // A crash right after creating the file: nothing was ever acknowledged from it.
        if !bytes.is_empty() {
            scan.problem = Some(format!("torn header ({} bytes)", bytes.len()));
        }
        return scan;
    }
    if &bytes[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
        scan.problem = Some("bad magic".to_owned());
        return scan;
    }
    let mut pos = JOURNAL_MAGIC.len();
    scan.valid_len = pos as u64;
    let mut expect_above = min_seq;
    while pos < bytes.len() {
        match decode_frame(&bytes[pos..], expect_above) {
            Ok((used, seq, deltas)) => {
                apply(seq, deltas);
                pos += used;
                scan.valid_len = pos as u64;
                scan.records += 1;
                scan.last_seq = Some(seq);
                expect_above = seq;
            }
            Err(e) => {
                scan.problem = Some(format!(
                    "{} at offset {pos} ({} bytes dropped)",
                    e.0,
                    bytes.len() - pos
                ));
                break;
            }
        }
    }
    scan
}

/// Decodes one frame; returns the bytes used, the sequence and the deltas.
fn decode_frame(bytes: &[u8], expect_above: u64) -> Result<(usize, u64, Vec<Delta>), DecodeError> {
    let mut r = Reader::new(bytes);
    let len = r
        .u32()
        .map_err(|_| DecodeError("torn frame header".into()))? as usize;
    let crc = r
        .u32()
        .map_err(|_| DecodeError("torn frame header".into()))?;
    // The smallest payload is a sequence and a count; a zero length would
    // also match the CRC of nothing (0), e.g. in a zero-filled tail.
    if !(12..=MAX_FRAME).contains(&len) {
        return bad(format!("frame length {len} out of range"));
    }
    if r.remaining() < len {
        return bad(format!(
            "torn frame: {len} bytes announced, {} present",
            r.remaining()
        ));
    }
    let payload = &bytes[8..8 + len];
    if crc32fast::hash(payload) != crc {
        return bad("frame CRC mismatch");
    }
    let mut p = Reader::new(payload);
    let seq = p.u64()?;
    if seq <= expect_above {
        return bad(format!("sequence {seq} not above {expect_above}"));
    }
    let count = p.u32()? as usize;
    let mut deltas = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        deltas.push(p.delta()?);
    }
    if p.remaining() != 0 {
        return bad("trailing bytes in frame");
    }
    Ok((8 + len, seq, deltas))
}

/// Builds a snapshot file's bytes.
pub(crate) struct SnapshotWriter {
    buf: Vec<u8>,
    count: u64,
}

impl SnapshotWriter {
    pub(crate) fn new(id_len: usize, generation: u64, last_seq: u64, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        put_u8(&mut buf, id_len as u8);
        put_u64(&mut buf, generation);
        put_u64(&mut buf, last_seq);
        SnapshotWriter { buf, count: 0 }
    }
    pub(crate) fn org(&mut self, o: &OrgRec) {
        put_org(&mut self.buf, o);
        self.count += 1;
    }
    pub(crate) fn meeting(&mut self, m: &MeetingRec) {
        put_meeting(&mut self.buf, m);
        self.count += 1;
    }
    pub(crate) fn tombstone(&mut self, id: ConferenceId, org: &str, at: u64, until: u64) {
        put_tombstone(&mut self.buf, id, org, at, until);
        self.count += 1;
    }
    pub(crate) fn finish(mut self) -> Vec<u8> {
        put_u64(&mut self.buf, self.count);
        let crc = crc32fast::hash(&self.buf);
        put_u32(&mut self.buf, crc);
        self.buf
    }
}

/// A snapshot's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotHeader {
    pub id_len: usize,
    pub generation: u64,
    pub last_seq: u64,
    pub count: u64,
}

/// Checks a snapshot's CRC and header; the deltas are then read with
/// [`read_snapshot_deltas`].
pub(crate) fn check_snapshot(bytes: &[u8]) -> Result<SnapshotHeader, DecodeError> {
    let header_len = SNAPSHOT_MAGIC.len() + 1 + 8 + 8;
    if bytes.len() < header_len + 12 {
        return bad("snapshot too short");
    }
    if &bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return bad("bad snapshot magic");
    }
    let body_end = bytes.len() - 4;
    let mut t = Reader::new(&bytes[body_end..]);
    if crc32fast::hash(&bytes[..body_end]) != t.u32()? {
        return bad("snapshot CRC mismatch");
    }
    let mut h = Reader::new(&bytes[SNAPSHOT_MAGIC.len()..]);
    let id_len = usize::from(h.u8()?);
    let generation = h.u64()?;
    let last_seq = h.u64()?;
    let count = Reader::new(&bytes[body_end - 8..body_end]).u64()?;
    Ok(SnapshotHeader {
        id_len,
        generation,
        last_seq,
        count,
    })
}

/// Decodes a checked snapshot's deltas in order.
pub(crate) fn read_snapshot_deltas(
    bytes: &[u8],
    header: &SnapshotHeader,
    mut apply: impl FnMut(Delta),
) -> Result<(), DecodeError> {
    let header_len = SNAPSHOT_MAGIC.len() + 1 + 8 + 8;
    let body = &bytes[header_len..bytes.len() - 12];
    let mut r = Reader::new(body);
    let mut n = 0u64;
    while r.remaining() > 0 {
        apply(r.delta()?);
        n += 1;
    }
    if n != header.count {
        return bad(format!(
            "snapshot holds {n} records, trailer says {}",
            header.count
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgRec {
        OrgRec {
            id: Arc::from(id),
            display_name: "Amos Marble".into(),
            email: "amos@contoso.com".into(),
            leader_pin: Some("1234".into()),
            mode: IdMode::Static,
            conference_id: ConferenceId::from_value(1234567, 7),
            created_ms: 1,
            updated_ms: 2,
            id_since_ms: 3,
        }
    }

    fn sample() -> Vec<Delta> {
        vec![
            Delta::PutOrganizer(org("amos")),
            Delta::Tombstone {
                id: ConferenceId::from_value(7654321, 7).unwrap(),
                organizer: Arc::from("amos"),
                at_ms: 10,
                quarantined_until_ms: u64::MAX,
            },
            Delta::PutMeeting(MeetingRec {
                id: Arc::from("m1"),
                organizer: Arc::from("amos"),
                conference_id: ConferenceId::from_value(42, 7).unwrap(),
                expires_ms: Some(99),
                created_ms: 5,
            }),
            Delta::DelMeeting(Arc::from("m1")),
            Delta::DelOrganizer(Arc::from("amos")),
        ]
    }

    fn journal(frames: &[(u64, Vec<Delta>)]) -> Vec<u8> {
        let mut out = JOURNAL_MAGIC.to_vec();
        for (seq, d) in frames {
            encode_frame(&mut out, *seq, d);
        }
        out
    }

    fn replay(bytes: &[u8]) -> (JournalScan, Vec<(u64, Vec<Delta>)>) {
        let mut got = Vec::new();
        let scan = scan_journal(bytes, 0, |s, d| got.push((s, d)));
        (scan, got)
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            (1, sample()),
            (2, vec![Delta::DelOrganizer(Arc::from("x"))]),
        ];
        let bytes = journal(&frames);
        let (scan, got) = replay(&bytes);
        assert_eq!(got, frames);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.problem, None);
        assert_eq!(scan.last_seq, Some(2));
    }

    #[test]
    fn torn_tail_is_cut_at_every_length() {
        let frames = vec![(1, sample()), (2, sample())];
        let bytes = journal(&frames);
        let first_end = journal(&frames[..1]).len();
        for cut in first_end + 1..bytes.len() {
            let (scan, got) = replay(&bytes[..cut]);
            assert_eq!(got, frames[..1].to_vec(), "cut at {cut}");
            assert_eq!(scan.valid_len, first_end as u64);
            assert!(scan.problem.is_some());
        }
    }

    #[test]
    fn corrupted_record_is_never_loaded() {
        let frames = vec![(1, sample()), (2, sample()), (3, sample())];
        let bytes = journal(&frames);
        let first_end = journal(&frames[..1]).len();
        for flip in first_end..journal(&frames[..2]).len() {
            let mut b = bytes.clone();
            b[flip] ^= 0x40;
            let (scan, got) = replay(&b);
            assert_eq!(got, frames[..1].to_vec(), "flip at {flip}");
            assert_eq!(scan.valid_len, first_end as u64);
            assert!(scan.problem.is_some());
        }
    }

    #[test]
    fn garbage_and_zeros_after_the_end_are_rejected() {
        let frames = vec![(1, sample())];
        let good = journal(&frames);
        for tail in [
            vec![0u8; 4096],
            vec![0xff; 3],
            b"hello, this is not a frame at all".to_vec(),
            // A plausible header announcing a huge frame.
            [u32::MAX.to_le_bytes(), 0u32.to_le_bytes()].concat(),
        ] {
            let mut b = good.clone();
            b.extend_from_slice(&tail);
            let (scan, got) = replay(&b);
            assert_eq!(got, frames);
            assert_eq!(scan.valid_len, good.len() as u64);
            assert!(scan.problem.is_some());
        }
    }

    #[test]
    fn replayed_frame_with_old_sequence_is_rejected() {
        let bytes = journal(&[(5, sample()), (5, sample())]);
        let (scan, got) = replay(&bytes);
        assert_eq!(got.len(), 1);
        assert!(scan.problem.unwrap().contains("sequence"));
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut w = SnapshotWriter::new(7, 3, 77, 0);
        let o = org("amos");
        w.org(&o);
        w.tombstone(ConferenceId::from_value(5, 7).unwrap(), "amos", 1, 2);
        let bytes = w.finish();
        let h = check_snapshot(&bytes).unwrap();
        assert_eq!(
            h,
            SnapshotHeader {
                id_len: 7,
                generation: 3,
                last_seq: 77,
                count: 2
            }
        );
        let mut got = Vec::new();
        read_snapshot_deltas(&bytes, &h, |d| got.push(d)).unwrap();
        assert_eq!(got[0], Delta::PutOrganizer(o));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(check_snapshot(&b).is_err(), "flip at {i} accepted");
        }
        assert!(check_snapshot(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn decoder_survives_arbitrary_bytes() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..256))| {
            let mut r = Reader::new(&bytes);
            while r.remaining() > 0 && r.delta().is_ok() {}
            let mut with_magic = JOURNAL_MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = scan_journal(&with_magic, 0, |_, _| {});
            let _ = check_snapshot(&bytes);
        });
    }
}
