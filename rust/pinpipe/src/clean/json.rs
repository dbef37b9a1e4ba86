//! The JSON reader of the decoder: one object per record, the members of wanted keys handed over
//! as borrowed text, every other member and nested value checked and skipped. It accepts exactly
//! the JSON of RFC 8259 in UTF-8 (what serde_json accepts, without its nesting limit) and
//! allocates only for a nested value's stack and for keys written with escapes; a string value's
//! escapes are decoded by [`unescape`], and only for the columns that keep it.
//!
//! It reads bytes, and checks UTF-8 as it goes: outside strings JSON is ASCII, so only the
//! non-ASCII bytes of strings need checking, and the string scan stops at them anyway. A text
//! the reader accepts is valid UTF-8, and so is every value it hands over.

use std::fmt;

/// A member's value, as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text (checked against JSON's number grammar, not converted).
    Number(&'a [u8]),
    /// A string's text between its quotes (UTF-8), and whether it holds escapes.
    Str(&'a [u8], bool),
    /// An object or an array.
    Complex,
}

/// Why a text is not one JSON object: what was expected, and where (1-based column).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub what: &'static str,
    pub column: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} at column {}", self.what, self.column)
    }
}

type Result<T> = std::result::Result<T, Error>;

/// Reads `text` as one JSON object with nothing but whitespace around it, calling `member` with
/// each value whose key (escapes decoded) is one of `names`, and that name's index, in order: a
/// repeated key is handed over again. Members with other keys are checked and not handed over.
pub fn object<'a>(text: &'a [u8], names: &[&str], mut member: impl FnMut(usize, Value<'a>)) -> Result<()> {
    let mut r = Reader { b: text, i: 0 };
    r.ws();
    if r.peek() != Some(b'{') {
        return r.fail("expected '{'");
    }
    r.i += 1;
    r.ws();
    if r.peek() == Some(b'}') {
        r.i += 1;
    } else {
        // Keys mostly come in the order of `names`: the name after the last one met is tried
        // first, against the text itself.
        let mut next = 0;
        loop {
            let found = match names.get(next) {
                Some(name) if r.is_key(name) => {
                    r.i += name.len() + 2;
                    Some(next)
                }
                _ => {
                    let (key, escaped) = r.key_text()?;
                    if escaped {
                        // A key with escapes names a column only once decoded.
                        unescape(key).and_then(|key| names.iter().position(|n| n.as_bytes() == key))
                    } else {
                        names.iter().position(|n| n.as_bytes() == key)
                    }
                }
            };
            r.colon()?;
            let value = r.value()?;
            if let Some(i) = found {
                member(i, value);
                next = i + 1;
            }
            r.ws();
            match r.peek() {
                Some(b',') => {
                    r.i += 1;
                    r.ws();
                }
                Some(b'}') => {
                    r.i += 1;
                    break;
                }
                _ => return r.fail("expected ',' or '}'"),
            }
        }
    }
    r.ws();
    if r.i < r.b.len() {
        return r.fail("trailing characters");
    }
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T> {
        Err(Error { what, column: self.i + 1 })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Whether the reader is at a key written as exactly `name` (a name has no character that
    /// JSON escapes).
    #[inline(always)]
    fn is_key(&self, name: &str) -> bool {
        let n = name.len();
        self.b
            .get(self.i..self.i + n + 2)
            .is_some_and(|k| k[0] == b'"' && k[n + 1] == b'"' && same(&k[1..=n], name.as_bytes()))
    }

    /// A member's key as written; the reader is at its opening quote.
    fn key_text(&mut self) -> Result<(&'a [u8], bool)> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a string key");
        }
        self.string()
    }

    /// The colon after a key, and whitespace around it.
    fn colon(&mut self) -> Result<()> {
        self.ws();
        if self.peek() != Some(b':') {
            return self.fail("expected ':'");
        }
        self.i += 1;
        Ok(())
    }

    /// A member's key and the colon after it; the reader is at the key's opening quote.
    fn key(&mut self) -> Result<(&'a [u8], bool)> {
        let key = self.key_text()?;
        self.colon()?;
        Ok(key)
    }

    /// One value, surrounding whitespace included; objects and arrays are checked and skipped.
    /// Inlined, as [`Reader::string`]: handing a value back through a call costs more than
    /// reading most values.
    #[inline(always)]
    fn value(&mut self) -> Result<Value<'a>> {
        self.ws();
        let value = match self.peek() {
            Some(b'"') => {
                let (s, escaped) = self.string()?;
                Value::Str(s, escaped)
            }
            Some(b'{' | b'[') => {
                self.nested()?;
                Value::Complex
            }
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            _ => return self.fail("expected a value"),
        };
        Ok(value)
    }

    fn literal(&mut self, word: &'static str, value: Value<'a>) -> Result<Value<'a>> {
        if !self.b[self.i..].starts_with(word.as_bytes()) {
            return self.fail("expected a value");
        }
        self.i += word.len();
        Ok(value)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<&'a [u8]> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("invalid number");
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("invalid number");
            }
            self.digits();
        }
        Ok(&self.b[start..self.i])
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// A string; the reader is at its opening quote. Returns the text between the quotes and
    /// whether it holds escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a [u8], bool)> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i += special(&self.b[self.i..]);
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok((&self.b[start..self.i - 1], escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u')
                            if self
                                .b
                                .get(self.i + 1..self.i + 5)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            self.i += 5
                        }
                        _ => return self.fail("invalid escape"),
                    }
                }
                Some(0x80..) => self.i += self.utf8_char()?,
                Some(_) => return self.fail("control character in a string"),
            }
        }
    }

    /// The length of the UTF-8 character the reader is at, whose first byte is not ASCII; an
    /// error if the bytes there are no UTF-8 character.
    #[cold]
    fn utf8_char(&self) -> Result<usize> {
        let len = match self.b[self.i] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 0,
        };
        // std's check knows the ranges of each byte (no overlong forms, no surrogates).
        match self.b.get(self.i..self.i + len).map(std::str::from_utf8) {
            Some(Ok(_)) if len > 0 => Ok(len),
            _ => self.fail("invalid UTF-8"),
        }
    }

    /// Checks and skips an object or array (any depth); the reader is at its opening bracket.
    fn nested(&mut self) -> Result<()> {
        // The closing bracket of each open container, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            // At the start of a value: open a container, or read a scalar.
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    self.i += 1;
                    let close = if c == b'{' { b'}' } else { b']' };
                    open.push(close);
                    self.ws();
                    if self.peek() == Some(close) {
                        self.i += 1;
                        open.pop();
                    } else {
                        if close == b'}' {
                            self.key()?;
                        }
                        self.ws();
                        continue;
                    }
                }
                _ => {
                    self.value()?;
                }
            }
            // After a value: the next member or element, or the end of containers.
            loop {
                let Some(&close) = open.last() else { return Ok(()) };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        self.ws();
                        if close == b'}' {
                            self.key()?;
                            self.ws();
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return self.fail(if close == b'}' { "expected ',' or '}'" } else { "expected ',' or ']'" }),
                }
            }
        }
    }
}

/// Whether two byte strings are equal; for keys, which are short: two overlapping words
/// compared cost less than a call to `memcmp`.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    let wide = |s: &[u8], at: usize| u128::from_le_bytes(s[at..at + 16].try_into().expect("16 bytes"));
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        _ if n != b.len() => false,
        16..=32 => wide(a, 0) == wide(b, 0) && wide(a, n - 16) == wide(b, n - 16),
        8..16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        // The first, middle and last bytes are every byte.
        1..4 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        _ => a == b,
    }
}

/// Position of the first byte inside a string that ends the plain run of ASCII text: a quote, a
/// backslash, a control character (below 0x20, not allowed raw) or a byte that is not ASCII (to
/// be checked as UTF-8); `bytes.len()` if none. Sixteen bytes at a time where SSE2 is there
/// (every x86-64), then eight.
fn special(bytes: &[u8]) -> usize {
    let mut at = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = bytes.get(at..at + 16) {
        let hits = specials_sse2(chunk.try_into().expect("16 bytes"));
        if hits != 0 {
            return at + hits.trailing_zeros() as usize;
        }
        at += 16;
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, the high bit is set where the byte is zero; wrong only above a true zero
    // (the borrow), so the lowest set bit is always right.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while at + 8 <= bytes.len() {
        let x = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            // A byte b < 0x20 makes b - 0x20 borrow into its high bit, which b itself has clear.
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | (x & HIGH);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..].iter().position(|b| matches!(b, b'"' | b'\\' | 0..0x20 | 0x80..)).unwrap_or(bytes.len() - at)
}

/// Bit i is set where byte i of `chunk` is a quote, a backslash, below 0x20 or not ASCII.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn specials_sse2(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: the intrinsics need SSE2, which this build enables (the cfg above). The one read
    // through a pointer is of the 16 bytes `chunk` borrows, by the unaligned load.
    unsafe {
        let x = _mm_loadu_si128(chunk.as_ptr().cast());
        // A byte is at most 0x1f exactly when the smaller of it and 0x1f is itself.
        let hits = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8)), _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8))),
            _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x),
        );
        // The mask takes each byte's high bit: set exactly for the bytes that are not ASCII.
        (_mm_movemask_epi8(hits) | _mm_movemask_epi8(x)) as u32
    }
}

/// A string's text between its quotes, as read by [`object`], with its escapes decoded; `None`
/// when a `\u` escape is half of a surrogate pair without the other half (valid JSON text, but
/// no character). UTF-8 in, UTF-8 out.
pub fn unescape(raw: &[u8]) -> Option<Vec<u8>> {
    let b = raw;
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &b[i..]) {
        out.extend_from_slice(&raw[i..i + k]);
        i += k + 1;
        let c = b[i];
        i += 1;
        let decoded = match c {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = |at: usize| {
                    b.get(at..at + 4).and_then(|h| u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                };
                let unit = hex(i)?;
                i += 4;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = if b.get(i..i + 2) == Some(b"\\u") { hex(i + 2) } else { None };
                        let low = low.filter(|l| (0xDC00..=0xDFFF).contains(l))?;
                        i += 6;
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            other => char::from(other),
        };
        out.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes());
    }
    out.extend_from_slice(&raw[i..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 6] = ["a", "b", "c", "e", "f", "g"];

    fn members(text: &str) -> Result<Vec<(&'static str, Value<'_>)>> {
        let mut out = Vec::new();
        object(text.as_bytes(), &NAMES, |i, v| out.push((NAMES[i], v)))?;
        Ok(out)
    }

    #[test]
    fn hands_over_each_member_as_written() {
        let text = r#" { "a" : "x\"y" , "b":-1.5e+3,"c":[1,{"d":[]},"]"],"\u0065":null,"f":true,"g":{}} "#;
        let got = members(text).unwrap();
        let want = [
            ("a", Value::Str(br#"x\"y"#, true)),
            ("b", Value::Number(b"-1.5e+3")),
            ("c", Value::Complex),
            ("e", Value::Null),
            ("f", Value::Bool(true)),
            ("g", Value::Complex),
        ];
        assert_eq!(got, want);
        assert_eq!(members("{}").unwrap(), vec![]);
        // Out of order, repeated, unknown, prefixes of names and names with more after them.
        let text = r#"{"g":1,"ab":2,"b":3,"":4,"a":5,"b":6,"a\"":7,"gg":8,"f" :9}"#;
        let got = members(text).unwrap();
        let want =
            [("g", "1"), ("b", "3"), ("a", "5"), ("b", "6"), ("f", "9")].map(|(k, v)| (k, Value::Number(v.as_bytes())));
        assert_eq!(got, want);
    }

    /// Whether serde_json reads `bytes` as UTF-8 JSON that is one object.
    fn serde_accepts(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok_and(|text| {
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
                && text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{')
        })
    }

    /// Whatever the text, the reader accepts it exactly when serde_json does.
    #[test]
    fn accepts_what_serde_json_accepts() {
        let cases = [
            r#"{"a":1}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":1E-0}"#,
            r#"{"a":+1}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\ud800"}"#,
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"\u{7f}\u{1}\"}",
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[,1]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":[[[[]]],[{}]]}"#,
            r#"{"a":[[[]]}"#,
            r#"{"a":tru}"#,
            r#"{"a":nulls}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{}"#,
            r#"[1]"#,
            r#""a""#,
            "",
            "   ",
            r#"{"a":"unterminated}"#,
            r#"{"a":1"#,
            "{\"a\":\r\n1\t}",
            "{\"a\":1}\u{a0}",
            r#"{"a":"\/\b\f\n\r\t\\"}"#,
        ];
        for text in cases {
            assert_eq!(object(text.as_bytes(), &NAMES, |_, _| {}).is_ok(), serde_accepts(text.as_bytes()), "{text:?}");
        }
        // Every byte changed, one at a time, in a line of every kind of value, to JSON's
        // characters and to bytes that begin, continue or never are UTF-8.
        let line =
            r#"{"s":"a\"\u00e9\n","é":"ü€😀x","n":-12.5e-3,"t":true,"f":false,"z":null,"o":{"k":[1,"x",{}]},"a":[]}"#;
        let changes = [
            b' ', b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'e', b'-', b'x', b'\t', 0x7f, 0x80, 0xbf,
            0xc0, 0xc3, 0xdf, 0xe0, 0xe2, 0xed, 0xf0, 0xf4, 0xf5, 0xff,
        ];
        for i in 0..line.len() {
            for c in changes {
                let mut bytes = line.as_bytes().to_vec();
                bytes[i] = c;
                let accepted = object(&bytes, &NAMES, |_, _| {}).is_ok();
                assert_eq!(accepted, serde_accepts(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
            }
        }
        // Characters of each length, cut short, and the encodings UTF-8 forbids.
        for (bytes, valid) in [
            (&b"\xc3\xa9"[..], true),
            (b"\xe2\x82\xac", true),
            (b"\xf0\x9f\x98\x80", true),
            (b"\xf4\x8f\xbf\xbf", true),
            (b"\xc3", false),
            (b"\xe2\x82", false),
            (b"\xf0\x9f\x98", false),
            (b"\xc0\xaf", false),
            (b"\xe0\x80\xaf", false),
            (b"\xed\xa0\x80", false),
            (b"\xf4\x90\x80\x80", false),
            (b"\xa9", false),
        ] {
            for place in [0, 1, 20] {
                let mut text = b"{\"a\":\"".to_vec();
                text.extend(std::iter::repeat_n(b'x', place));
                text.extend_from_slice(bytes);
                text.extend_from_slice(b"\"}");
                assert_eq!(object(&text, &NAMES, |_, _| {}).is_ok(), valid, "{bytes:x?} after {place}");
            }
        }
    }

    #[test]
    fn byte_strings_are_the_same_exactly_when_equal() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for n in 0..=50 {
            let a = &text[..n];
            assert!(same(a, a), "{n}");
            assert!(n == 0 || !same(a, &text[1..=n]), "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same(a, &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn nesting_has_no_limit() {
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(members(&deep).unwrap(), vec![("a", Value::Complex)]);
    }

    #[test]
    fn unescapes_like_serde_json() {
        for raw in [r#"x\"y"#, r#"\u00e9\/\b\f\n\r\t\\"#, r#"\ud83d\ude00!"#, "plain"] {
            let quoted = format!("\"{raw}\"");
            let got = unescape(raw.as_bytes()).map(|u| String::from_utf8(u).expect("UTF-8"));
            assert_eq!(got, serde_json::from_str::<String>(&quoted).ok(), "{raw}");
        }
        assert_eq!(unescape(br#"\ud800"#), None);
        assert_eq!(unescape(br#"\udc00x"#), None);
        assert_eq!(unescape(br#"\ud800\u0041"#), None);
    }

    #[test]
    fn finds_the_end_of_plain_text_anywhere() {
        let mut bytes = vec![b'a'; 40];
        assert_eq!(special(&bytes), 40);
        for at in 0..40 {
            for c in [0x1f, 0, b'"', b'\\', 0x80, 0xc3, 0xff] {
                bytes[at] = c;
                assert_eq!(special(&bytes), at, "{c:#x} at {at}");
                // Only the first one counts.
                if at + 1 < 40 {
                    bytes[at + 1] = b'"';
                    assert_eq!(special(&bytes), at);
                    bytes[at + 1] = b'a';
                }
            }
            for c in [0x20, 0x7f, b'!', b'#', b'[', b']'] {
                bytes[at] = c;
                assert_eq!(special(&bytes), 40, "{c:#x} at {at}");
            }
            bytes[at] = b'a';
        }
    }
}
