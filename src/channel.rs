//! Channel names: what a browser subscribes to and a producer publishes to.

use std::fmt;
use std::sync::Arc;

/// The longest channel name accepted, in characters.
pub const MAX_CHANNEL_NAME_LEN: usize = 128;

/// ChannelName is a validated channel name: 1 to 128 characters of `A-Z a-z 0-9 _ . : -`.
///
/// Once a value exists it is valid ("parse, don't validate"); it is cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

/// ChannelNameError says why a string is not a channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than [`MAX_CHANNEL_NAME_LEN`].
    #[error("channel name is longer than {MAX_CHANNEL_NAME_LEN} characters")]
    TooLong,
    /// The name has a character outside the allowed set.
    #[error("channel name {name:?} has a character other than A-Z a-z 0-9 _ . : -")]
    BadCharacter {
        /// The offending name, shortened for the error message.
        name: String,
    },
}

impl ChannelName {
    /// Parse checks `s` and returns it as a channel name.
    pub fn parse(s: &str) -> Result<Self, ChannelNameError> {
        if s.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if s.len() > MAX_CHANNEL_NAME_LEN {
            return Err(ChannelNameError::TooLong);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        if !s.bytes().all(allowed) {
            return Err(ChannelNameError::BadCharacter {
                name: s.chars().take(40).collect(),
            });
        }
        Ok(Self(Arc::from(s)))
    }

    /// As_str returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        let name = "Az09_.:-";
        assert_eq!(
            ChannelName::parse(name).map(|c| c.to_string()),
            Ok(name.to_string())
        );
    }

    #[test]
    fn refuses_empty_long_and_foreign_names() {
        assert_eq!(ChannelName::parse(""), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::parse(&"a".repeat(129)),
            Err(ChannelNameError::TooLong)
        );
        assert!(ChannelName::parse(&"a".repeat(128)).is_ok());
        for bad in ["a b", "a/b", "é", "a\nb", "a,b", "*"] {
            assert!(
                matches!(
                    ChannelName::parse(bad),
                    Err(ChannelNameError::BadCharacter { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
