//! Settings of the embedded conference bridge (`[bridge]`).

use serde::{Deserialize, Serialize};

use super::jitter::MAX_DELAY_FRAMES;

/// Most speakers the mixer will sum at once (the upper bound of
/// `bridge.active_speakers`); the selection works in a fixed array this long.
pub const MAX_ACTIVE_SPEAKERS: usize = 8;

/// Largest room `bridge.max_room_size` may ask for.
pub const MAX_ROOM_SIZE_LIMIT: usize = 1000;

/// Settings of the embedded bridge: one built-in audio conference per
/// meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSettings {
    /// Most participants in one room; the caller over it is refused.
    /// Default 100.
    pub max_room_size: usize,
    /// Play a short tone to the others when someone joins. Default on.
    pub join_tone: bool,
    /// Play two short descending tones to the others when someone leaves.
    /// Default on.
    pub leave_tone: bool,
    /// How many of the loudest talkers are mixed at once in a room larger
    /// than this (1..=8). Bounds the noise every listener hears in big
    /// rooms. Default 3.
    pub active_speakers: usize,
    /// Level (dBov, RMS of a smoothed 20 ms frame) a talker must reach to be
    /// mixed when the room has more talkers than `active_speakers`.
    /// Default −50.
    pub speaker_threshold_dbov: f32,
    /// Playout delay of each participant's jitter buffer, in 20 ms frames
    /// (1..=4). Default 2 (40 ms).
    pub jitter_frames: u8,
    /// Bridge profiles (`[[bridge.profiles]]`): embedded, or an external
    /// bridge reached by REFER or by a relayed second call. Default none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<super::profiles::BridgeProfile>,
    /// Profile used by dial-in numbers that name none; `None`: the
    /// embedded bridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            max_room_size: 100,
            join_tone: true,
            leave_tone: true,
            active_speakers: 3,
            speaker_threshold_dbov: -50.0,
            jitter_frames: 2,
            profiles: Vec::new(),
            default_profile: None,
        }
    }
}

impl BridgeSettings {
    /// Every problem with these settings, each naming its key
    /// (`"bridge.max_room_size must be …"`). Empty when usable.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !(2..=MAX_ROOM_SIZE_LIMIT).contains(&self.max_room_size) {
            errors.push(format!(
                "bridge.max_room_size must be 2..={MAX_ROOM_SIZE_LIMIT} (got {})",
                self.max_room_size
            ));
        }
        if !(1..=MAX_ACTIVE_SPEAKERS).contains(&self.active_speakers) {
            errors.push(format!(
                "bridge.active_speakers must be 1..={MAX_ACTIVE_SPEAKERS} (got {})",
                self.active_speakers
            ));
        }
        // `contains` is false for NaN too.
        if !(-90.0..=0.0).contains(&self.speaker_threshold_dbov) {
            errors.push(format!(
                "bridge.speaker_threshold_dbov must be -90..=0 (got {})",
                self.speaker_threshold_dbov
            ));
        }
        if !(1..=MAX_DELAY_FRAMES).contains(&self.jitter_frames) {
            errors.push(format!(
                "bridge.jitter_frames must be 1..={MAX_DELAY_FRAMES} (got {})",
                self.jitter_frames
            ));
        }
        errors.extend(super::profiles::validate_profiles(
            &self.profiles,
            self.default_profile.as_deref(),
        ));
        errors
    }

    /// The profile a dial-in number uses: the one it names, else
    /// `default_profile`, else the embedded bridge. `None` when the name
    /// is unknown (refused by validation).
    pub fn profile_for(&self, name: Option<&str>) -> Option<super::profiles::BridgeProfile> {
        match name.or(self.default_profile.as_deref()) {
            Some(n) => self.profiles.iter().find(|p| p.name == n).cloned(),
            None => Some(super::profiles::BridgeProfile::embedded("embedded")),
        }
    }

    /// Whether a profile of this name is configured.
    pub fn has_profile(&self, name: &str) -> bool {
        self.profiles.iter().any(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(BridgeSettings::default().validate(), Vec::<String>::new());
    }

    #[test]
    fn every_bad_key_is_named() {
        let s = BridgeSettings {
            max_room_size: 1,
            join_tone: true,
            leave_tone: false,
            active_speakers: 0,
            speaker_threshold_dbov: f32::NAN,
            jitter_frames: 9,
            ..BridgeSettings::default()
        };
        let errors = s.validate();
        assert_eq!(errors.len(), 4, "{errors:?}");
        for key in [
            "bridge.max_room_size",
            "bridge.active_speakers",
            "bridge.speaker_threshold_dbov",
            "bridge.jitter_frames",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key}: {errors:?}"
            );
        }
    }

    #[test]
    fn toml_section_fills_defaults_and_rejects_unknown_keys() {
        let s: BridgeSettings = toml::from_str("max_room_size = 12\njoin_tone = false").unwrap();
        assert_eq!(s.max_room_size, 12);
        assert!(!s.join_tone);
        assert_eq!(s.active_speakers, 3);
        assert!(toml::from_str::<BridgeSettings>("max_size = 3").is_err());
        let back: BridgeSettings = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn profiles_and_default() {
        let s: BridgeSettings = toml::from_str(
            r#"
default_profile = "ext"
[[profiles]]
name = "ext"
mode = "refer"
uri = "sip:{conference_id}@192.0.2.50"
"#,
        )
        .unwrap();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        assert_eq!(
            s.profile_for(None).unwrap().mode,
            crate::bridge::profiles::BridgeMode::Refer
        );
        assert!(s.profile_for(Some("nope")).is_none());
        let d = BridgeSettings::default();
        assert_eq!(
            d.profile_for(None).unwrap().mode,
            crate::bridge::profiles::BridgeMode::Embedded
        );
        let back: BridgeSettings = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
