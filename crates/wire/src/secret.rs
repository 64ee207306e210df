//! A credential that redacts itself.

use std::fmt;

/// A token or key. `Debug` prints `[redacted]`; it does not implement `Serialize`, so it cannot be
/// written into a log, an error or a response by accident. The value comes out only through
/// [`Secret::expose`], or through [`expose`] where a wire type must carry it (a token response).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Security-sensitive: the secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// `#[serde(serialize_with = "ledgerlink_wire::secret::expose")]`: the one way a secret is written
/// out, on the fields of a response that exists to hand it over.
pub fn expose<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&secret.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("lla_abcdef");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret([redacted]))");
    }
}
