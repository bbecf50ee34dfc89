//! CallSession with a fake clock, a fake pacer and an in-memory directory.

use super::*;
use crate::directory::Refusal;
use crate::dtmf::inband::digit_frequencies;
use crate::dtmf::rfc4733::TelephoneEvent;
use std::sync::Arc;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);
const CALLER: &str = "192.0.2.10:40000";

fn route() -> Route {
    Route {
        organizer: Arc::from("amos.marble@contoso.com"),
        meeting: Arc::from("static"),
    }
}

fn directory(id: ConferenceId) -> Lookup {
    match id.to_string().as_str() {
        "1234567" => Lookup::Active(route()),
        "7000001" => Lookup::Refused(Refusal::Reset),
        _ => Lookup::Refused(Refusal::Unknown),
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A call with a fake pacer (prompts last `prompt_len`), a directory that
/// answers at once, and a log of what the shell was asked to do.
struct Sim {
    session: CallSession,
    now: Instant,
    next_playback: u64,
    /// The playback the fake pacer plays and when it ends.
    playing: Option<(PlaybackId, PromptId, Instant)>,
    prompt_len: Duration,
    played: Vec<PromptId>,
    stops: usize,
    destinations: Vec<SocketAddr>,
    codecs: Vec<Law>,
    lookups: Vec<ConferenceId>,
    routed: Option<Route>,
    failures: Vec<(EntryFailure, u32)>,
    hung_up: Option<HangUpReason>,
    seq: u16,
    ts: u32,
}

fn params(event_pt: Option<u8>) -> MediaParams {
    MediaParams {
        law: Law::Mu,
        audio_pt: 0,
        event_pt,
        remote: Some("192.0.2.10:30000".parse().unwrap()),
    }
}

fn settings() -> IvrSettings {
    IvrSettings {
        refusal_delay: Duration::ZERO,
        ..IvrSettings::default()
    }
}

impl Sim {
    fn new(params: MediaParams, dtmf: DtmfSettings) -> Sim {
        let t0 = Instant::now();
        let media = MediaSettings {
            media_timeout: 5 * S,
            ..MediaSettings::default()
        };
        let mut session = CallSession::new(&settings(), &dtmf, &media, params, None, t0);
        session.start(t0);
        let mut sim = Sim {
            session,
            now: t0,
            next_playback: 0,
            playing: None,
            prompt_len: 3 * S,
            played: Vec::new(),
            stops: 0,
            destinations: Vec::new(),
            codecs: Vec::new(),
            lookups: Vec::new(),
            routed: None,
            failures: Vec::new(),
            hung_up: None,
            seq: 1000,
            ts: 50_000,
        };
        sim.drain();
        sim
    }

    fn rfc4733() -> Sim {
        Sim::new(params(Some(101)), DtmfSettings::default())
    }

    fn drain(&mut self) {
        while let Some(a) = self.session.poll_action() {
            assert!(self.hung_up.is_none(), "action after hang-up: {a:?}");
            match a {
                CallAction::Play { prompt } => {
                    assert!(self.playing.is_none(), "overlapping prompts");
                    self.next_playback += 1;
                    let id = PlaybackId(self.next_playback);
                    self.playing = Some((id, prompt, self.now + self.prompt_len));
                    self.played.push(prompt);
                    self.session.prompt_queued(prompt, id);
                }
                CallAction::Stop => {
                    self.stops += 1;
                    if let Some((id, _, _)) = self.playing.take() {
                        self.session
                            .prompt_event(PromptEvent::Stopped(id), self.now);
                    }
                }
                CallAction::SetDestination(d) => self.destinations.push(d),
                CallAction::ChangeCodec { law, .. } => {
                    // The old stream goes with whatever it played.
                    self.playing = None;
                    self.codecs.push(law);
                }
                CallAction::LookUp(id) => {
                    self.lookups.push(id);
                    self.session.handle_lookup(directory(id), self.now);
                }
                CallAction::Route(r) => self.routed = Some(r),
                CallAction::EntryFailed { failure, attempt } => {
                    self.failures.push((failure, attempt))
                }
                CallAction::HangUp(reason) => self.hung_up = Some(reason),
            }
        }
    }

    /// Advances to `until`, ending prompts and firing timers on the way.
    /// The caller keeps sending RTP audio every 20 ms when `talking`.
    fn run_until(&mut self, until: Instant, talking: bool) {
        loop {
            let prompt = self.playing.map(|(_, _, t)| t);
            let timer = self.session.poll_timeout();
            let audio = talking.then(|| self.now + 20 * MS);
            let Some(next) = [prompt, timer, audio]
                .into_iter()
                .flatten()
                .min()
                .filter(|t| *t <= until)
            else {
                break;
            };
            self.now = next;
            if prompt == Some(next) {
                if let Some((id, _, _)) = self.playing.take() {
                    self.session.prompt_event(PromptEvent::Finished(id), next);
                }
            } else if audio == Some(next) {
                self.audio(&[0xff; 160]);
            } else {
                self.session.handle_timeout(next);
            }
            self.drain();
        }
        self.now = until;
    }

    fn wait(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, true);
    }

    fn audio(&mut self, payload: &[u8]) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let p = rtp(0, self.seq, self.ts, false, payload);
        self.session
            .handle_rtp(&p, CALLER.parse().unwrap(), self.now);
        self.drain();
    }

    /// One RFC 4733 key press: a start packet, then three end packets.
    fn key_rfc4733(&mut self, d: Digit) {
        self.ts = self.ts.wrapping_add(800);
        let mut payload = [0u8; 4];
        for (i, end) in [false, true, true, true].into_iter().enumerate() {
            self.seq = self.seq.wrapping_add(1);
            TelephoneEvent::dtmf(d, end, 10, 400 + 160 * i as u16)
                .write(&mut payload)
                .unwrap();
            let p = rtp(101, self.seq, self.ts, i == 0, &payload);
            self.session
                .handle_rtp(&p, CALLER.parse().unwrap(), self.now);
            self.drain();
            self.now += 20 * MS;
        }
    }

    fn keys_rfc4733(&mut self, keys: &str) {
        for c in keys.chars() {
            self.key_rfc4733(Digit::from_char(c).unwrap());
            self.wait(100 * MS);
        }
    }

    fn keys_info(&mut self, keys: &str) {
        for c in keys.chars() {
            self.session
                .handle_info_digit(Digit::from_char(c).unwrap(), self.now);
            self.drain();
            self.wait(150 * MS);
        }
    }

    /// Keys sent as G.711 µ-law tones, 80 ms on, 80 ms off, 20 ms packets.
    fn keys_inband(&mut self, keys: &str) {
        for c in keys.chars() {
            let d = Digit::from_char(c).unwrap();
            for frame in tone_frames(d, 4) {
                self.audio(&frame);
                self.now += 20 * MS;
            }
            for _ in 0..4 {
                self.audio(&[0xff; 160]);
                self.now += 20 * MS;
            }
        }
    }
}

/// `frames` 20 ms µ-law frames of the key's two tones at about -10 dBm0 each.
fn tone_frames(d: Digit, frames: usize) -> Vec<[u8; 160]> {
    let (low, high) = digit_frequencies(d);
    let amp = 22_706.0 * 10f64.powf(-10.0 / 20.0);
    let mut out = Vec::new();
    for f in 0..frames {
        let mut frame = [0u8; 160];
        for (i, b) in frame.iter_mut().enumerate() {
            let t = (f * 160 + i) as f64 / 8000.0;
            let x = amp * (2.0 * std::f64::consts::PI * f64::from(low) * t).sin()
                + amp * (2.0 * std::f64::consts::PI * f64::from(high) * t).sin();
            *b = crate::media::g711::ulaw_encode(x as i16);
        }
        out.push(frame);
    }
    out
}

fn id(s: &str) -> ConferenceId {
    ConferenceId::parse(s, s.len()).unwrap()
}

#[test]
fn welcome_plays_at_start() {
    let sim = Sim::rfc4733();
    assert_eq!(sim.played, vec![PromptId::Welcome]);
    assert!(sim.session.listens_rfc4733());
    assert!(!sim.session.listens_inband());
}

#[test]
fn rfc4733_digits_are_looked_up_and_routed_after_joining() {
    let mut sim = Sim::rfc4733();
    sim.wait(500 * MS);
    sim.keys_rfc4733("1234567#");
    assert_eq!(sim.lookups, vec![id("1234567")]);
    assert!(sim.stops >= 1, "the first key stops the welcome");
    assert_eq!(sim.played.last(), Some(&PromptId::Joining));
    assert!(sim.routed.is_none(), "routed only after the joining prompt");
    sim.wait(4 * S);
    assert_eq!(sim.routed, Some(route()));
    assert!(sim.hung_up.is_none());
    assert_eq!(sim.session.stats().digits_rfc4733, 8);
    // Routed calls stay up while media flows.
    sim.wait(20 * S);
    assert!(sim.hung_up.is_none());
}

#[test]
fn symmetric_rtp_latches_to_the_callers_address() {
    let mut sim = Sim::rfc4733();
    sim.wait(100 * MS);
    assert_eq!(sim.destinations, vec![CALLER.parse().unwrap()]);
}

#[test]
fn info_digits_reach_the_attendant() {
    let mut sim = Sim::rfc4733();
    sim.keys_info("1234567");
    assert_eq!(sim.lookups, vec![id("1234567")]);
    sim.wait(4 * S);
    assert_eq!(sim.routed, Some(route()));
    assert_eq!(sim.session.stats().digits_info, 7);
}

#[test]
fn inband_digits_from_g711_tones() {
    let mut sim = Sim::new(params(None), DtmfSettings::default());
    assert!(sim.session.listens_inband());
    sim.wait(300 * MS);
    sim.keys_inband("1234567");
    assert_eq!(sim.lookups, vec![id("1234567")]);
    assert_eq!(sim.session.stats().digits_inband, 7);
    sim.wait(4 * S);
    assert_eq!(sim.routed, Some(route()));
}

#[test]
fn inband_mode_listens_to_tones_even_with_telephone_event() {
    let dtmf = DtmfSettings {
        mode: DtmfMode::Inband,
        ..DtmfSettings::default()
    };
    let mut sim = Sim::new(params(Some(101)), dtmf);
    sim.key_rfc4733(Digit::D5);
    assert_eq!(sim.session.stats().digits_rfc4733, 0);
    assert_eq!(sim.session.stats().events_ignored, 4);
    sim.keys_inband("1234567");
    assert_eq!(sim.lookups, vec![id("1234567")]);
}

#[test]
fn info_mode_ignores_rtp_digits() {
    let dtmf = DtmfSettings {
        mode: DtmfMode::Info,
        ..DtmfSettings::default()
    };
    let mut sim = Sim::new(params(None), dtmf);
    assert!(!sim.session.listens_inband());
    sim.keys_inband("1234567");
    assert!(sim.lookups.is_empty());
    sim.keys_info("1234567");
    assert_eq!(sim.lookups, vec![id("1234567")]);
}

#[test]
fn a_press_sent_by_two_methods_counts_once() {
    let mut sim = Sim::rfc4733();
    for c in "1234567".chars() {
        let d = Digit::from_char(c).unwrap();
        sim.session.handle_info_digit(d, sim.now);
        sim.drain();
        sim.key_rfc4733(d);
        sim.wait(100 * MS);
    }
    assert_eq!(sim.lookups, vec![id("1234567")]);
    let stats = sim.session.stats();
    assert_eq!(stats.digits_info + stats.digits_rfc4733, 7);
    assert_eq!(stats.duplicates, 7);
}

#[test]
fn three_wrong_ids_end_in_goodbye_and_hang_up() {
    let mut sim = Sim::rfc4733();
    for _ in 0..3 {
        sim.keys_rfc4733("7654321");
        sim.wait(200 * MS);
    }
    assert_eq!(sim.lookups.len(), 3);
    assert_eq!(
        sim.failures.iter().map(|f| f.1).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(sim.failures.iter().all(|f| f.0.is_guess()));
    assert_eq!(sim.played.last(), Some(&PromptId::Goodbye));
    assert!(sim.hung_up.is_none(), "goodbye plays first");
    sim.wait(4 * S);
    assert_eq!(
        sim.hung_up,
        Some(HangUpReason::Attendant(HangupReason::TooManyAttempts))
    );
    assert_eq!(sim.session.poll_timeout(), None);
    assert!(sim.playing.is_none());
}

#[test]
fn a_reset_id_is_refused_like_an_unknown_one() {
    let mut sim = Sim::rfc4733();
    sim.keys_rfc4733("7000001");
    sim.wait(200 * MS);
    assert_eq!(
        sim.failures,
        vec![(EntryFailure::Refused(Refusal::Reset), 1)]
    );
    assert_eq!(sim.played.last(), Some(&PromptId::NotValid));
    assert!(sim.hung_up.is_none());
}

#[test]
fn no_rtp_for_the_media_timeout_hangs_up() {
    let mut sim = Sim::rfc4733();
    let until = sim.now + 6 * S;
    sim.run_until(until, false);
    assert_eq!(sim.hung_up, Some(HangUpReason::MediaTimeout));
    assert_eq!(sim.session.poll_timeout(), None);
    // Nothing more happens, whatever arrives.
    sim.audio(&[0xff; 160]);
    sim.session.handle_info_digit(Digit::D1, sim.now);
    assert!(sim.session.poll_action().is_none());
}

#[test]
fn caller_hanging_up_mid_prompt_leaves_nothing() {
    let mut sim = Sim::rfc4733();
    sim.wait(1 * S);
    assert!(sim.playing.is_some());
    sim.session.caller_hung_up(sim.now);
    assert!(sim.session.poll_action().is_none());
    assert_eq!(sim.session.poll_timeout(), None);
    assert!(sim.session.is_ended());
    // A late pacer report changes nothing.
    if let Some((id, _, _)) = sim.playing.take() {
        sim.session.prompt_event(PromptEvent::Finished(id), sim.now);
    }
    assert!(sim.session.poll_action().is_none());
}

#[test]
fn a_stopped_prompt_is_not_reported_finished() {
    let mut sim = Sim::rfc4733();
    let (welcome, _, _) = sim.playing.unwrap();
    sim.key_rfc4733(Digit::D1);
    assert!(sim.playing.is_none(), "barge-in stopped the welcome");
    // The pacer had already sent the last frame: its late Finished is ignored.
    sim.session
        .prompt_event(PromptEvent::Finished(welcome), sim.now);
    sim.drain();
    assert_eq!(sim.played, vec![PromptId::Welcome]);
    assert!(sim.failures.is_empty());
}

#[test]
fn hang_up_reasons_read_well() {
    assert_eq!(HangUpReason::MediaTimeout.to_string(), "media timeout");
    assert_eq!(
        HangUpReason::Attendant(HangupReason::TooManyAttempts).to_string(),
        "too many attempts"
    );
}

#[test]
fn a_codec_change_restarts_the_interrupted_prompt_on_a_new_stream() {
    let mut sim = Sim::rfc4733();
    sim.wait(1 * S);
    sim.session.media_changed(MediaParams {
        law: Law::A,
        audio_pt: 8,
        ..params(Some(101))
    });
    sim.drain();
    assert_eq!(sim.codecs, vec![Law::A]);
    assert_eq!(sim.played, vec![PromptId::Welcome, PromptId::Welcome]);
    // The restarted welcome ends normally and the first-digit timer runs.
    sim.wait(4 * S);
    assert!(sim.playing.is_none());
    assert!(matches!(
        sim.session.flow_state(),
        crate::ivr::FlowState::Collecting { keyed: 0 }
    ));
    // A change of address alone just moves the destination.
    let moved: SocketAddr = "192.0.2.99:40000".parse().unwrap();
    sim.session.media_changed(MediaParams {
        law: Law::A,
        audio_pt: 8,
        event_pt: Some(101),
        remote: Some(moved),
    });
    sim.drain();
    assert_eq!(sim.codecs.len(), 1);
    assert_eq!(sim.destinations.last(), Some(&moved));
}

#[test]
fn rtcp_from_the_far_end_keeps_a_silent_call_up() {
    let mut sim = Sim::rfc4733();
    sim.wait(100 * MS);
    // A receiver report (RFC 3550 §6.4.2) with no report blocks.
    let rr = [0x80, 201, 0, 1, 0x0b, 0xad, 0xca, 0xfe];
    let rtcp_from: SocketAddr = "192.0.2.10:40001".parse().unwrap();
    for _ in 0..4 {
        let until = sim.now + 3 * S;
        sim.run_until(until, false);
        sim.session.handle_rtcp(&rr, rtcp_from, sim.now);
    }
    assert!(sim.hung_up.is_none(), "RTCP alone keeps the call");
    // RTCP from elsewhere does not.
    let stranger: SocketAddr = "198.51.100.7:40001".parse().unwrap();
    sim.session.handle_rtcp(&rr, stranger, sim.now);
    let until = sim.now + 6 * S;
    sim.run_until(until, false);
    assert_eq!(sim.hung_up, Some(HangUpReason::MediaTimeout));
}

#[test]
fn audio_goes_to_the_meeting_only_once_routed() {
    let mut sim = Sim::rfc4733();
    let from: SocketAddr = CALLER.parse().unwrap();
    let p = rtp(0, 1, 160, false, &[0x55; 160]);
    assert_eq!(sim.session.handle_rtp_media(&p, from, sim.now), None);
    assert!(!sim.session.is_routed());
    sim.wait(500 * MS);
    sim.keys_rfc4733("1234567#");
    sim.wait(4 * S);
    assert_eq!(sim.routed, Some(route()));
    assert!(sim.session.is_routed());
    let p = rtp(0, sim.seq.wrapping_add(1), 123_456, false, &[0x55; 160]);
    let heard = sim.session.handle_rtp_media(&p, from, sim.now);
    assert_eq!(
        heard,
        Some(RoutedAudio {
            timestamp: 123_456,
            payload: &[0x55; 160]
        })
    );
    // Telephone-events are not audio for the meeting.
    let ev = rtp(
        101,
        sim.seq.wrapping_add(2),
        123_616,
        true,
        &[1, 10, 0, 160],
    );
    assert_eq!(sim.session.handle_rtp_media(&ev, from, sim.now), None);
    sim.session.caller_hung_up(sim.now);
    assert!(!sim.session.is_routed());
    assert_eq!(sim.session.handle_rtp_media(&p, from, sim.now), None);
}
