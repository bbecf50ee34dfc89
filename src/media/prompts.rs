//! Prompt loading: one directory per language under the prompt directory,
//! `prompts/<lang>/<file_stem>.wav` (file stems from [`PromptId::file_stem`]).
//!
//! Every WAV is checked and pre-encoded at start-up into 20 ms G.711 frames,
//! both μ-law and A-law, held in shared `Arc` storage: thousands of calls
//! playing the same prompt share one copy, and playback is a pointer walk.
//! Only 8 kHz mono 16-bit PCM is accepted; dialgate does not resample
//! (`prompts/generate.sh` shows how to convert with sox).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::g711::Law;
use super::rtp::FRAME_BYTES;
use super::{MediaSettings, PromptId};

/// One 20 ms frame of G.711 (160 samples at 8 kHz).
pub type Frame = [u8; FRAME_BYTES];
/// A prompt's frames in one law, shared by every call that plays it.
pub type Frames = Arc<[Frame]>;

/// The only sample rate accepted (RFC 3551 §4.5.14: G.711 runs at 8 kHz).
pub const SAMPLE_RATE: u32 = 8000;
/// Longest prompt accepted, to bound memory on a mistaken file.
pub const MAX_PROMPT: Duration = Duration::from_secs(120);

/// Why one prompt file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file for a prompt does not exist.
    #[error("{path}: prompt file missing")]
    Missing {
        /// Expected path.
        path: PathBuf,
    },
    /// The file is not a readable WAV.
    #[error("{path}: not a readable WAV file: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        #[source]
        source: hound::Error,
    },
    /// More than one channel.
    #[error("{path}: has {channels} channels; prompts must be mono")]
    NotMono {
        /// The file.
        path: PathBuf,
        /// Channels found.
        channels: u16,
    },
    /// Not 8 kHz.
    #[error("{path}: sample rate is {rate} Hz; prompts must be 8000 Hz (dialgate does not resample: convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`)")]
    WrongSampleRate {
        /// The file.
        path: PathBuf,
        /// Rate found.
        rate: u32,
    },
    /// Not 16-bit integer PCM.
    #[error("{path}: {bits}-bit {format} samples; prompts must be 16-bit integer PCM")]
    WrongSampleFormat {
        /// The file.
        path: PathBuf,
        /// Bits per sample found.
        bits: u16,
        /// "integer" or "float".
        format: &'static str,
    },
    /// No samples at all.
    #[error("{path}: contains no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Longer than [`MAX_PROMPT`].
    #[error("{path}: longer than the {max:?} allowed for a prompt")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: Duration,
    },
    /// The prompt directory or a language directory cannot be listed.
    #[error("{path}: cannot read prompt directory: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The default language has no directory.
    #[error("{path}: no prompt directory for the default language {language:?}")]
    NoDefaultLanguage {
        /// The expected directory.
        path: PathBuf,
        /// The language.
        language: String,
    },
}

/// Every problem found while loading prompts, reported together so an
/// operator fixes them in one pass.
#[derive(Debug, thiserror::Error)]
pub struct PromptLoadError(pub Vec<PromptError>);

impl fmt::Display for PromptLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} prompt problem(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// One prompt, pre-encoded in both laws. Cloning is two `Arc` bumps.
#[derive(Clone, Debug)]
pub struct Prompt {
    mu: Frames,
    a: Frames,
}

impl Prompt {
    /// Encodes 8 kHz linear PCM into 20 ms frames; the last frame is padded
    /// with silence.
    pub fn from_pcm(pcm: &[i16]) -> Prompt {
        Prompt {
            mu: encode_frames(pcm, Law::Mu),
            a: encode_frames(pcm, Law::A),
        }
    }

    /// The frames in the law the call negotiated.
    pub fn frames(&self, law: Law) -> &Frames {
        match law {
            Law::Mu => &self.mu,
            Law::A => &self.a,
        }
    }

    /// Number of 20 ms frames.
    pub fn frame_count(&self) -> usize {
        self.mu.len()
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(20 * self.frame_count() as u64)
    }
}

fn encode_frames(pcm: &[i16], law: Law) -> Frames {
    let silence = law.silence();
    pcm.chunks(FRAME_BYTES)
        .map(|chunk| {
            let mut frame = [silence; FRAME_BYTES];
            law.encode(chunk, &mut frame[..chunk.len()]);
            frame
        })
        .collect()
}

/// The complete prompt set of one language.
#[derive(Clone, Debug)]
pub struct PromptSet {
    language: String,
    prompts: Vec<Prompt>,
}

impl PromptSet {
    /// Loads and checks every prompt of `language` from `dir/<language>/`.
    /// All problems are returned, not just the first.
    pub fn load(dir: &Path, language: &str) -> Result<PromptSet, PromptLoadError> {
        let lang_dir = dir.join(language);
        let mut prompts = Vec::with_capacity(PromptId::ALL.len());
        let mut errors = Vec::new();
        for id in PromptId::ALL {
            let path = lang_dir.join(format!("{}.wav", id.file_stem()));
            match load_wav(&path) {
                Ok(pcm) => prompts.push(Prompt::from_pcm(&pcm)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(PromptSet {
                language: language.to_owned(),
                prompts,
            })
        } else {
            Err(PromptLoadError(errors))
        }
    }

    /// The language tag (directory name).
    pub fn language(&self) -> &str {
        &self.language
    }

    /// One prompt.
    pub fn get(&self, id: PromptId) -> &Prompt {
        // `prompts` holds one entry per PromptId::ALL, in that order, and
        // ALL lists every variant in declaration order.
        &self.prompts[id as usize]
    }
}

/// Every installed language's prompts, with a default language.
#[derive(Clone, Debug)]
pub struct PromptLibrary {
    default: PromptSet,
    others: BTreeMap<String, PromptSet>,
}

impl PromptLibrary {
    /// Loads every language directory under `settings.prompt_dir`. The
    /// default language must exist; every language found must be complete.
    pub fn load(settings: &MediaSettings) -> Result<PromptLibrary, PromptLoadError> {
        Self::load_dir(&settings.prompt_dir, &settings.default_language)
    }

    /// Same as [`PromptLibrary::load`] with explicit arguments.
    pub fn load_dir(dir: &Path, default_language: &str) -> Result<PromptLibrary, PromptLoadError> {
        let entries = std::fs::read_dir(dir).map_err(|source| {
            PromptLoadError(vec![PromptError::Directory {
                path: dir.to_owned(),
                source,
            }])
        })?;
        let mut languages = Vec::new();
        for entry in entries.flatten() {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                if is_valid_language(name) {
                    languages.push(name.to_owned());
                }
            }
        }
        if !languages.iter().any(|l| l == default_language) {
            return Err(PromptLoadError(vec![PromptError::NoDefaultLanguage {
                path: dir.join(default_language),
                language: default_language.to_owned(),
            }]));
        }
        let mut errors = Vec::new();
        let mut default = None;
        let mut others = BTreeMap::new();
        languages.sort();
        for lang in languages {
            match PromptSet::load(dir, &lang) {
                Ok(set) if lang == default_language => default = Some(set),
                Ok(set) => {
                    others.insert(lang, set);
                }
                Err(PromptLoadError(mut e)) => errors.append(&mut e),
            }
        }
        match default {
            Some(default) if errors.is_empty() => Ok(PromptLibrary { default, others }),
            _ => Err(PromptLoadError(errors)),
        }
    }

    /// A library of one set (tests, embedded use).
    pub fn from_set(default: PromptSet) -> PromptLibrary {
        PromptLibrary {
            default,
            others: BTreeMap::new(),
        }
    }

    /// The prompt set for `language`, or the default one.
    pub fn set(&self, language: Option<&str>) -> &PromptSet {
        language
            .and_then(|l| self.others.get(l))
            .unwrap_or(&self.default)
    }

    /// One prompt in `language` (default language if not installed).
    pub fn prompt(&self, language: Option<&str>, id: PromptId) -> &Prompt {
        self.set(language).get(id)
    }

    /// Installed languages, default first.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default.language()).chain(self.others.keys().map(String::as_str))
    }
}

/// A language directory name: ASCII letters, digits, '-' or '_', 1–35
/// characters (BCP 47-ish; also keeps paths inside the prompt directory).
pub fn is_valid_language(name: &str) -> bool {
    (1..=35).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads and checks one prompt WAV, returning its samples.
fn load_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    if !path.is_file() {
        return Err(PromptError::Missing {
            path: path.to_owned(),
        });
    }
    let unreadable = |source| PromptError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let reader = hound::WavReader::open(path).map_err(unreadable)?;
    let spec = reader.spec();
    if spec.channels != 1 {
        return Err(PromptError::NotMono {
            path: path.to_owned(),
            channels: spec.channels,
        });
    }
    if spec.sample_rate != SAMPLE_RATE {
        return Err(PromptError::WrongSampleRate {
            path: path.to_owned(),
            rate: spec.sample_rate,
        });
    }
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(PromptError::WrongSampleFormat {
            path: path.to_owned(),
            bits: spec.bits_per_sample,
            format: match spec.sample_format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            },
        });
    }
    let max_samples = MAX_PROMPT.as_secs() * u64::from(SAMPLE_RATE);
    if u64::from(reader.len()) > max_samples {
        return Err(PromptError::TooLong {
            path: path.to_owned(),
            max: MAX_PROMPT,
        });
    }
    let pcm = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if pcm.is_empty() {
        return Err(PromptError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(pcm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, channels: u16, rate: u32, bits: u16, samples: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..samples * usize::from(channels) {
            let v = ((i as f64 * 0.3).sin() * 8000.0) as i32;
            if bits == 8 {
                w.write_sample(v as i8).unwrap();
            } else {
                w.write_sample(v as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    fn full_set(dir: &Path, lang: &str) {
        let d = dir.join(lang);
        std::fs::create_dir_all(&d).unwrap();
        for id in PromptId::ALL {
            write_wav(&d.join(format!("{}.wav", id.file_stem())), 1, 8000, 16, 400);
        }
    }

    fn messages(e: PromptLoadError) -> Vec<String> {
        e.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn prompt_ids_index_in_order() {
        for (i, id) in PromptId::ALL.iter().enumerate() {
            assert_eq!(*id as usize, i);
        }
    }

    #[test]
    fn loads_a_complete_set_and_encodes_both_laws() {
        let tmp = tempfile::tempdir().unwrap();
        full_set(tmp.path(), "en");
        let lib = PromptLibrary::load_dir(tmp.path(), "en").unwrap();
        let p = lib.prompt(None, PromptId::Welcome);
        // 400 samples: two full frames and one padded with silence.
        assert_eq!(p.frame_count(), 3);
        assert_eq!(p.duration(), Duration::from_millis(60));
        assert_eq!(p.frames(Law::Mu)[2][80..], [0xff; 80]);
        assert_eq!(p.frames(Law::A)[2][80..], [0xd5; 80]);
        assert_eq!(
            p.frames(Law::Mu)[0][1],
            super::super::g711::ulaw_encode((0.3f64.sin() * 8000.0) as i16)
        );
        // Shared storage: cloning does not copy frames.
        let c = p.clone();
        assert!(Arc::ptr_eq(c.frames(Law::Mu), p.frames(Law::Mu)));
    }

    #[test]
    fn the_committed_english_set_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let lib = PromptLibrary::load_dir(&dir, "en").unwrap();
        for id in PromptId::ALL {
            let p = lib.prompt(Some("en"), id);
            assert!(p.duration() > Duration::from_secs(1), "{id:?}");
        }
    }

    #[test]
    fn languages_fall_back_to_default() {
        let tmp = tempfile::tempdir().unwrap();
        full_set(tmp.path(), "en");
        full_set(tmp.path(), "de");
        std::fs::create_dir_all(tmp.path().join("not a language")).unwrap();
        let lib = PromptLibrary::load_dir(tmp.path(), "en").unwrap();
        assert_eq!(lib.languages().collect::<Vec<_>>(), ["en", "de"]);
        assert_eq!(lib.set(Some("de")).language(), "de");
        assert_eq!(lib.set(Some("fr")).language(), "en");
        assert_eq!(lib.set(None).language(), "en");
    }

    #[test]
    fn every_bad_file_is_named_with_its_reason() {
        let tmp = tempfile::tempdir().unwrap();
        full_set(tmp.path(), "en");
        let d = tmp.path().join("en");
        write_wav(&d.join("welcome.wav"), 2, 8000, 16, 100);
        write_wav(&d.join("not-valid.wav"), 1, 16000, 16, 100);
        write_wav(&d.join("timeout.wav"), 1, 8000, 8, 100);
        std::fs::remove_file(d.join("joining.wav")).unwrap();
        std::fs::write(d.join("goodbye.wav"), b"RIFF garbage").unwrap();
        write_wav(&d.join("bridge-unavailable.wav"), 1, 8000, 16, 0);
        let errs = messages(PromptLibrary::load_dir(tmp.path(), "en").unwrap_err());
        assert_eq!(errs.len(), 6, "{errs:#?}");
        let expect = [
            ("welcome.wav", "2 channels; prompts must be mono"),
            (
                "not-valid.wav",
                "16000 Hz; prompts must be 8000 Hz (dialgate does not resample",
            ),
            (
                "timeout.wav",
                "8-bit integer samples; prompts must be 16-bit",
            ),
            ("joining.wav", "prompt file missing"),
            ("goodbye.wav", "not a readable WAV"),
            ("bridge-unavailable.wav", "contains no audio"),
        ];
        for (msg, (file, reason)) in errs.iter().zip(expect) {
            assert!(msg.contains(file) && msg.contains(reason), "{msg}");
        }
    }

    #[test]
    fn float_wav_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        full_set(tmp.path(), "en");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(tmp.path().join("en/welcome.wav"), spec).unwrap();
        w.write_sample(0.5f32).unwrap();
        w.finalize().unwrap();
        let errs = messages(PromptLibrary::load_dir(tmp.path(), "en").unwrap_err());
        assert!(errs[0].contains("32-bit float"), "{errs:?}");
    }

    #[test]
    fn missing_directories_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let errs = messages(PromptLibrary::load_dir(&tmp.path().join("nope"), "en").unwrap_err());
        assert!(errs[0].contains("cannot read prompt directory"), "{errs:?}");
        full_set(tmp.path(), "de");
        let errs = messages(PromptLibrary::load_dir(tmp.path(), "en").unwrap_err());
        assert!(errs[0].contains("default language \"en\""), "{errs:?}");
    }

    #[test]
    fn an_incomplete_extra_language_is_an_error_too() {
        let tmp = tempfile::tempdir().unwrap();
        full_set(tmp.path(), "en");
        full_set(tmp.path(), "fr");
        std::fs::remove_file(tmp.path().join("fr/goodbye.wav")).unwrap();
        let errs = messages(PromptLibrary::load_dir(tmp.path(), "en").unwrap_err());
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("fr/goodbye.wav"), "{errs:?}");
    }

    #[test]
    fn language_names_are_checked() {
        assert!(is_valid_language("en"));
        assert!(is_valid_language("pt-BR"));
        assert!(is_valid_language("zh_Hans"));
        assert!(!is_valid_language(""));
        assert!(!is_valid_language(".."));
        assert!(!is_valid_language("en/../x"));
    }
}
