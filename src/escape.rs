//! Hex escapes, one reader for all of them: `%2F` in a proxy's credentials, `_2E` in a
//! NATS subject token, the hex of a signature.

/// The byte of two hex digits; `None` for anything else (`from_str_radix` alone would
/// also take a sign: `+f` is not hex).
pub(crate) fn hex_byte(pair: &str) -> Option<u8> {
    if pair.len() != 2 || !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(pair, 16).ok()
}

/// `s` with every `<marker><two hex digits>` turned back into its byte; `None` when an
/// escape is malformed or the result is not UTF-8.
pub(crate) fn unescape(s: &str, marker: u8) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == marker {
            out.push(hex_byte(s.get(i + 1..i + 3)?)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_come_back_and_signs_are_not_hex() {
        assert_eq!(unescape("a%2Fb%20c", b'%').as_deref(), Some("a/b c"));
        assert_eq!(unescape("x_2Ey", b'_').as_deref(), Some("x.y"));
        assert_eq!(unescape("%+f", b'%'), None);
        assert_eq!(unescape("%4", b'%'), None);
        assert_eq!(hex_byte("+f"), None);
        assert_eq!(hex_byte("ff"), Some(255));
    }
}
