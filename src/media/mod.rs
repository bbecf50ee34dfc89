//! Media: G.711 codecs, RTP sessions, prompts and the shared playback pacer.

pub mod g711;
pub mod ports;

/// The prompts the auto attendant plays. Each language directory holds one
/// WAV file per prompt, named by [`PromptId::file_stem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PromptId {
    /// "Welcome. Please enter your conference ID, followed by the pound key."
    Welcome,
    /// "That conference ID is not valid. Please try again."
    NotValid,
    /// "We didn't receive your conference ID."
    Timeout,
    /// "Thank you. You're joining the meeting now."
    Joining,
    /// "Sorry, we couldn't find that meeting. Goodbye."
    Goodbye,
    /// Played when the meeting bridge can't be reached.
    BridgeUnavailable,
    /// Played to a caller refused early by the guessing defence.
    TooManyAttempts,
}

impl PromptId {
    /// Every prompt, in a stable order.
    pub const ALL: [PromptId; 7] = [
        PromptId::Welcome,
        PromptId::NotValid,
        PromptId::Timeout,
        PromptId::Joining,
        PromptId::Goodbye,
        PromptId::BridgeUnavailable,
        PromptId::TooManyAttempts,
    ];

    /// File name without extension inside a language's prompt directory.
    pub fn file_stem(self) -> &'static str {
        match self {
            PromptId::Welcome => "welcome",
            PromptId::NotValid => "not-valid",
            PromptId::Timeout => "timeout",
            PromptId::Joining => "joining",
            PromptId::Goodbye => "goodbye",
            PromptId::BridgeUnavailable => "bridge-unavailable",
            PromptId::TooManyAttempts => "too-many-attempts",
        }
    }
}
