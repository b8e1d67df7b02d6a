//! API key secrets: generation from the OS CSPRNG, the `kws_` format with its
//! CRC-32 checksum, and the `Secret` type that never prints itself.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// The base62 alphabet, digit values 0–61 in this order.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const PREFIX: &str = "kws_";
const RANDOM_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Length of a generated secret: prefix, 43 random chars and 6 checksum chars.
pub const GENERATED_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// Fills `buf` from the OS CSPRNG. A failing OS RNG leaves nothing safe to do.
pub(crate) fn os_random(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the OS random number generator failed");
}

/// `len` uniformly random base62 characters (rejection sampling keeps them unbiased).
#[must_use]
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        os_random(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would favour the first digits.
            if b < 248 && out.len() < len {
                out.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// 32 random bytes from the OS CSPRNG.
#[must_use]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    os_random(&mut buf);
    buf
}

/// CRC-32 (IEEE, as zlib) of `body`, as exactly six base62 digits, most significant first.
#[must_use]
pub fn checksum(body: &str) -> String {
    let mut value = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&b| b as char).collect()
}

/// What the shape of a presented secret says before any lookup.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum SecretShape {
    /// A `kws_` secret whose checksum matches.
    Generated,
    /// A `kws_`-shaped secret whose checksum does not match: mistyped or forged.
    BadChecksum,
    /// Anything else (imported secrets may take any form).
    Other,
}

/// Classifies a presented secret, so a mistyped generated secret is refused without a lookup.
#[must_use]
pub fn shape(s: &str) -> SecretShape {
    if s.len() != GENERATED_LEN
        || !s.starts_with(PREFIX)
        || !s[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return SecretShape::Other;
    }
    let (body, sum) = s.split_at(PREFIX.len() + RANDOM_LEN);
    if checksum(body) == sum { SecretShape::Generated } else { SecretShape::BadChecksum }
}

/// An API key secret. It has no `Display` or `Serialize`, and its `Debug` prints `***`.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// A new secret: `kws_`, 43 random base62 chars (256 bits) and the 6-char checksum.
    #[must_use]
    pub fn generate() -> Self {
        let body = format!("{PREFIX}{}", random_base62(RANDOM_LEN));
        let sum = checksum(&body);
        Self(SecretString::from(body + &sum))
    }

    /// Wraps a secret presented by a client or decrypted from the store.
    #[must_use]
    pub fn from_presented(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }

    /// Validates a secret to import: printable ASCII, 20–512 chars, and a
    /// correct checksum if it has the generated form.
    pub fn parse_import(s: &str) -> Result<Self, &'static str> {
        if !(20..=512).contains(&s.len()) {
            return Err("must be 20 to 512 characters");
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("must be printable ASCII");
        }
        if shape(s) == SecretShape::BadChecksum {
            return Err("has the kws_ form but its checksum does not match");
        }
        Ok(Self::from_presented(s))
    }

    /// The secret's characters, for hashing, encryption or the one response that reveals it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_has_the_documented_form() {
        let s = Secret::generate();
        let v = s.expose();
        assert_eq!(v.len(), 53);
        assert!(v.starts_with("kws_"));
        assert!(v[4..].bytes().all(|b| BASE62.contains(&b)));
        assert_eq!(shape(v), SecretShape::Generated);
        assert_eq!(&v[47..], checksum(&v[..47]));
    }

    #[test]
    fn checksum_is_crc32_in_six_base62_digits() {
        // crc32("123456789") = 0xCBF43926 = 3421780262 = 3*62^5 + 45*62^4 + 32*62^3 + 37*62^2 + 15*62 + 56... checked below.
        let crc = crc32fast::hash(b"123456789");
        assert_eq!(crc, 0xCBF4_3926);
        let sum = checksum("123456789");
        let decoded = sum.bytes().fold(0u64, |acc, b| acc * 62 + BASE62.iter().position(|&c| c == b).unwrap() as u64);
        assert_eq!(decoded, u64::from(crc));
        assert_eq!(sum.len(), 6);
        // Zero pads: crc32("") = 0.
        assert_eq!(checksum(""), "000000");
    }

    #[test]
    fn a_single_typo_breaks_the_checksum() {
        let s = Secret::generate();
        let mut chars: Vec<char> = s.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(shape(&typo), SecretShape::BadChecksum);
    }

    #[test]
    fn other_shapes_are_not_checked() {
        assert_eq!(shape("my-imported-secret-value"), SecretShape::Other);
        assert_eq!(shape("kws_short"), SecretShape::Other);
    }

    #[test]
    fn secrets_are_distinct_and_uniform_over_the_alphabet() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a.expose(), b.expose());
        let sample = random_base62(62 * 200);
        for c in BASE62 {
            let n = sample.bytes().filter(|b| b == c).count();
            assert!(n > 100 && n < 320, "digit {} appeared {n} times", *c as char);
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::generate();
        let shown = format!("{s:?} {:#?}", s);
        assert!(!shown.contains(&s.expose()[4..20]));
        assert!(shown.contains("***"));
    }

    #[test]
    fn import_rules() {
        assert!(Secret::parse_import("short").is_err());
        assert!(Secret::parse_import(&"x".repeat(513)).is_err());
        assert!(Secret::parse_import("tab\tis-not-printable-ascii").is_err());
        assert!(Secret::parse_import("non-ascii-é-secret-value").is_err());
        assert!(Secret::parse_import(&"y".repeat(20)).is_ok());
        assert!(Secret::parse_import(&"y".repeat(512)).is_ok());
        let good = Secret::generate();
        assert!(Secret::parse_import(good.expose()).is_ok());
        let mut bad = good.expose().to_owned();
        bad.replace_range(52..53, if bad.ends_with('0') { "1" } else { "0" });
        assert!(Secret::parse_import(&bad).is_err());
    }
}
