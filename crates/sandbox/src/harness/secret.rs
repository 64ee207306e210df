//! A string that must never reach a log line, an error or a response body by accident.

use std::fmt;

/// A credential (client secret, webhook key). `Debug` prints `[redacted]`; the value comes out only
/// through [`Secret::expose`], so every place that reveals it is greppable.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Security-sensitive: returns the secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// For `#[serde(with)]` on the fields of the sandbox's state file (`--state`), the one place the
/// sandbox writes its own credentials out: a `Secret` has no `Serialize`, so nothing else can.
pub mod stored {
    use super::Secret;

    pub fn serialize<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
